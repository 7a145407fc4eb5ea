"""Every Keras backend computes what TensorFlow computes with the same weights.

`fixtures/backend_reference.npz` is what the TensorFlow backend gave with
the trained model of `fixtures/main_run` (written by
`fixtures/make_backend_reference.py`); the CI runs this file under
`KERAS_BACKEND=tensorflow`, `jax` and `torch`, each in its own process.
"""

import os

import keras
import numpy as np
import pytest

from keras_stageshow import Transformer

HERE = os.path.join(os.path.dirname(__file__), "fixtures")


@pytest.fixture(scope="module")
def reference():
    with np.load(os.path.join(HERE, "backend_reference.npz")) as data:
        return dict(data)


@pytest.fixture(scope="module")
def model():
    model = keras.saving.load_model(
        os.path.join(HERE, "main_run", "model.keras"), safe_mode=True
    )
    assert isinstance(model, Transformer)
    return model


def test_logits_match_the_tensorflow_reference(model, reference):
    logits = keras.ops.convert_to_numpy(
        model((reference["source_ids"], reference["target_ids"]), training=False)
    )
    # Logits at padded targets are no promise (see test_saved_runs.py).
    real = reference["target_ids"] != 0
    # Measured: at most 4.3e-6 apart on JAX and 3.8e-6 on PyTorch, float32
    # rounding of logits up to 10.5 (identical on TensorFlow); a real change
    # of the computation moves them far more than 1e-5.
    np.testing.assert_allclose(
        logits[real], reference["logits"][real], rtol=0, atol=1e-5
    )


@pytest.mark.parametrize("strategy", ["greedy", "beam"])
def test_generated_tokens_equal_the_tensorflow_reference(model, reference, strategy):
    tokens, scores = model.generate(
        reference["source_ids"], strategy=strategy, num_beams=4, return_scores=True
    )
    np.testing.assert_array_equal(tokens, reference[f"{strategy}_tokens"])
    np.testing.assert_allclose(scores, reference[f"{strategy}_scores"], atol=1e-4)
