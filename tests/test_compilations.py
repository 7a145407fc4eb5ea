"""XLA compiles a training program per batch shape: bounded shapes bound
the compilations of a `fit` (counted where traces are compilations)."""

import keras
import pytest

import keras_stageshow as ks
from keras_stageshow.datasets import make_translation_dataset
from keras_stageshow.datasets.synthetic import stage_language_pairs

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "jax",
    reason="jax.jit traces once per compiled shape; TensorFlow's tf.function "
    "(reduce_retracing) traces once for all shapes and XLA compiles per "
    "shape underneath, out of sight (tests/test_datasets.py counts the "
    "shapes there)",
)


class CountingTransformer(ks.Transformer):
    """Counts `train_step` traces: one per program jax.jit compiles."""

    traces = 0

    def train_step(self, *args, **kwargs):
        CountingTransformer.traces += 1
        return super().train_step(*args, **kwargs)


def _traces_of_a_two_epoch_fit(bounded_shapes):
    source, target = stage_language_pairs(200, seed=5)
    tok = ks.SubwordTokenizer.train([source, target], vocabulary_size=100)
    ds, stats = make_translation_dataset(
        source, target, tok, tok, max_length=40, tokens_per_batch=256,
        return_stats=True, bounded_shapes=bounded_shapes, max_shapes=2,
    )
    model = CountingTransformer(
        tok.vocabulary_size(), tok.vocabulary_size(), num_layers=1, d_model=16,
        num_heads=2, d_ff=32, max_length=40,
    )
    model.compile(jit_compile=True)
    CountingTransformer.traces = 0
    model.fit(ds, epochs=2, verbose=0)
    return CountingTransformer.traces, stats


def test_a_jit_fit_of_two_epochs_compiles_once_per_bounded_shape():
    # Without the bound, this data has a dozen shapes and as many programs
    # (tests/test_datasets.py shows the shapes; compiling them all here
    # would take minutes).
    traces, stats = _traces_of_a_two_epoch_fit(bounded_shapes=True)
    assert 1 <= traces <= stats["shapes"] <= 2
