import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import keras_stageshow as ks  # noqa: E402

TINY = dict(num_layers=2, d_model=16, num_heads=2, d_ff=32, max_length=24)


@pytest.fixture(autouse=True)
def _isolate_keras_state():
    """Each test starts from float32, a fixed seed and a clean session."""
    keras.config.set_dtype_policy("float32")
    keras.utils.set_random_seed(1234)
    yield
    keras.config.set_dtype_policy("float32")


def tiny_transformer(vocab=30, target_vocab=None, **overrides):
    kwargs = dict(TINY, dropout_rate=0.0)
    kwargs.update(overrides)
    return ks.Transformer(vocab, target_vocab or vocab, **kwargs)


def random_ids(batch, length, vocab=30, seed=0, min_id=4):
    rng = np.random.default_rng(seed)
    return rng.integers(min_id, vocab, size=(batch, length)).astype("int32")
