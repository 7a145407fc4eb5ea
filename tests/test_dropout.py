"""The stage-show layers' `Dropout` (keras_stageshow/layers/dropout.py): it
drops the rate asked for, keeps the expectation in bfloat16 (where
`keras.layers.Dropout` on TensorFlow does not), differentiates as dropout,
is deterministic for a seed, runs on any shape and backend, and a training
backup (`StepBackup`) carries its generators' state."""

import json

import keras
import numpy as np
import pytest
from keras import ops

import keras_stageshow as ks
from conftest import tiny_transformer
from keras_stageshow.layers.dropout import Dropout
from keras_stageshow.layers.dropout import tensorflow_rate
from keras_stageshow.training import StepBackup
from keras_stageshow.training.backup import random_state_variables

# 2**20 ones: the mean of a 0.1 dropout's result has a standard deviation
# of sqrt(0.1 * 0.9) / 0.9 / 1024 = 3.3e-4 around 1.
N = 2**20
MEAN_TOLERANCE = 1.2e-3


def dropped_fraction_and_mean(layer, dtype):
    y = ops.convert_to_numpy(ops.cast(layer(ops.ones((N,), dtype), training=True), "float64"))
    return float(np.mean(y == 0)), float(np.mean(y))


def test_inference_and_rate_zero_are_the_identity():
    x = np.random.default_rng(0).normal(size=(2, 3, 5)).astype("float32")
    np.testing.assert_array_equal(ops.convert_to_numpy(Dropout(0.5)(x)), x)
    np.testing.assert_array_equal(
        ops.convert_to_numpy(Dropout(0.5)(x, training=False)), x
    )
    np.testing.assert_array_equal(
        ops.convert_to_numpy(Dropout(0.0)(x, training=True)), x
    )


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_drops_the_rate_and_keeps_the_expectation(dtype):
    if dtype == "bfloat16" and keras.backend.backend() == "torch":
        # There the layer is `keras.random.dropout`, whose bfloat16 division
        # by 0.9 keeps 0.9984 of the expectation: Keras's, not ours.
        pytest.skip("keras.random.dropout's bfloat16 scale on PyTorch")
    layer = Dropout(0.1, seed=0, dtype=dtype)
    fraction, mean = dropped_fraction_and_mean(layer, dtype)
    rate = 0.1
    if keras.backend.backend() == "tensorflow":  # 0.0986 in bfloat16
        import tensorflow as tf

        rate = tensorflow_rate(0.1, tf.as_dtype(dtype).as_numpy_dtype)[0] / 2**16
    assert abs(fraction - rate) < 1.5e-3, fraction
    assert abs(mean - 1.0) < MEAN_TOLERANCE, mean


@pytest.mark.tf_only
def test_keras_dropout_in_bfloat16_is_the_biased_one_this_layer_replaces():
    """The reason the layer exists (its module's comment): if Keras's
    dropout keeps the expectation in bfloat16 on TensorFlow, this fails,
    and `keras.layers.Dropout` can come back."""
    fraction, mean = dropped_fraction_and_mean(
        keras.layers.Dropout(0.1, seed=0, dtype="bfloat16"), "bfloat16"
    )
    assert abs(mean - 1.0) > MEAN_TOLERANCE, mean


@pytest.mark.tf_only
def test_kept_values_are_scaled_by_one_over_the_rate_drawn():
    x = np.random.default_rng(1).normal(size=(7, 9, 11)).astype("float32")
    y = ops.convert_to_numpy(Dropout(0.1, seed=3)(x, training=True))
    kept = y != 0
    np.testing.assert_allclose(y[kept], x[kept] * np.float32(1 / 0.9), rtol=1e-6)


@pytest.mark.tf_only
@pytest.mark.parametrize(
    "dtype, threshold, scale",
    [("float32", 6554, np.float32(1 / 0.9)), ("bfloat16", 6461, 1.109375)],
)
def test_the_rate_drawn_makes_the_rounded_scale_exact(dtype, threshold, scale):
    """0.1 in bfloat16: 1 / 0.9 rounds to 1.109375, so 6461 / 65536 are
    dropped and the kept 59075 / 65536 times 1.109375 is 1 to 2**-16."""
    import tensorflow as tf

    drawn = tensorflow_rate(0.1, tf.as_dtype(dtype).as_numpy_dtype)
    assert drawn == (threshold, pytest.approx(float(scale), rel=1e-7))
    assert abs((2**16 - threshold) / 2**16 * drawn[1] - 1) < 2**-16


def test_gradient_is_the_mask_times_the_scale():
    x = np.random.default_rng(2).normal(size=(4, 6, 8)).astype("float32")
    layer = Dropout(0.3, seed=5)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        variable = tf.Variable(x)
        with tf.GradientTape() as tape:
            y = layer(variable, training=True)
            loss = tf.reduce_sum(y)
        gradient = tape.gradient(loss, variable).numpy()
        y = y.numpy()
    elif keras.backend.backend() == "jax":
        import jax

        seed_state = layer.seed_generator.state.value
        y = np.asarray(layer(x, training=True))
        layer.seed_generator.state.assign(seed_state)
        gradient = np.asarray(
            jax.grad(lambda v: layer(v, training=True).sum())(x)
        )
    else:
        import torch

        variable = torch.tensor(x, requires_grad=True)
        y_tensor = layer(variable, training=True)
        y_tensor.sum().backward()
        gradient, y = variable.grad.numpy(), y_tensor.detach().numpy()
    kept = y != 0
    assert 0.2 < 1 - kept.mean() < 0.4
    scale = y[kept] / x[kept]
    np.testing.assert_allclose(gradient[kept], scale, rtol=1e-6)
    np.testing.assert_array_equal(gradient[~kept], 0)


def test_a_seed_gives_the_same_masks_and_each_call_a_new_one():
    x = np.ones((3, 5, 7), "float32")  # an odd number of elements
    first, second = Dropout(0.5, seed=11), Dropout(0.5, seed=11)
    a1, a2 = (ops.convert_to_numpy(first(x, training=True)) for _ in range(2))
    b1 = ops.convert_to_numpy(second(x, training=True))
    np.testing.assert_array_equal(a1, b1)
    assert (a1 != a2).any()
    assert a1.shape == x.shape


@pytest.mark.tf_only
def test_runs_on_unknown_shapes_and_under_xla():
    import tensorflow as tf

    layer = Dropout(0.2, seed=0)
    spec = tf.TensorSpec((None, None, 6), tf.float32)
    for jit_compile in (False, True):
        step = tf.function(lambda x: layer(x, training=True), input_signature=[spec],
                           jit_compile=jit_compile)
        y = step(tf.ones((3, 5, 6))).numpy()
        assert y.shape == (3, 5, 6)
        assert 0 < (y == 0).mean() < 0.5


def test_config_round_trips_and_bad_rates_name_the_argument():
    layer = Dropout(0.25, seed=7, name="drop")
    clone = Dropout.from_config(layer.get_config())
    assert (clone.rate, clone.seed, clone.name) == (0.25, 7, "drop")
    with pytest.raises(ValueError, match="`rate` must be in"):
        Dropout(1.0)


def test_every_stage_show_dropout_is_this_layer():
    model = ks.Transformer(30, 30, num_layers=1, d_model=8, num_heads=2, d_ff=16,
                           attention_dropout_rate=0.1)
    model.build(((None, None), (None, None)))
    dropouts, seen, todo = [], set(), [model]
    while todo:  # every sublayer, through the layers' public attributes
        layer = todo.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        if "dropout" in type(layer).__name__.lower():
            dropouts.append(layer)
        for value in vars(layer).values():
            values = value if isinstance(value, (list, tuple)) else [value]
            todo += [v for v in values if isinstance(v, keras.layers.Layer)]
    # 1 + 2 + 1 (embeddings, encoder layer, its attention) and 1 + 3 + 2.
    assert len(dropouts) == 10, [layer.path for layer in dropouts]
    assert all(type(layer) is Dropout for layer in dropouts)


def test_a_step_backup_restores_the_dropout_generators_state(tmp_path):
    def built_model():
        model = tiny_transformer(dropout_rate=0.1)
        model.compile(warmup_steps=10)
        model((source[:1], source[:1]))
        return model

    source = np.random.default_rng(0).integers(4, 30, (64, 6)).astype("int32")
    model = built_model()
    generators = random_state_variables(model)
    # What Keras's `Model.variables` holds besides `weights` is the seed
    # generators' state and only that, and `weights` (what `save_weights`
    # saves) leaves it out: 2 encoder layers x 2 Adjusts, 2 decoder layers
    # x 3, and the 2 Preprocesses.
    assert len(generators) == 2 * 2 + 2 * 3 + 2 and all(
        v.path.endswith("seed_generator_state") for v in generators
    )
    assert not any("seed_generator" in v.path for v in model.weights)
    untrained = [ops.convert_to_numpy(v) for v in generators]
    backup = StepBackup(tmp_path / "backup", every_steps=3)
    model.fit((source, source), source, batch_size=8, epochs=1, verbose=0,
              callbacks=[backup])
    trained = [ops.convert_to_numpy(v) for v in random_state_variables(model)]
    # Each of the 8 steps drew once from each generator. (On PyTorch,
    # Keras's dropout with no seed given draws from torch's own generator
    # instead, which the backup does not record.)
    draws = 0 if keras.backend.backend() == "torch" else 8
    for before, after in zip(untrained, trained, strict=True):
        assert after[0] == before[0] and after[1] == before[1] + draws

    restored = built_model()
    backup.restore(restored)
    for a, b in zip(random_state_variables(restored), trained, strict=True):
        np.testing.assert_array_equal(ops.convert_to_numpy(a), b)

    # Another model's backup is refused, naming the fix, and the model is
    # left as it was.
    other = tiny_transformer(dropout_rate=0.0)
    other.compile(warmup_steps=10)
    other((source[:1], source[:1]))
    weights = other.get_weights()
    with pytest.raises(ValueError, match="random-number generators"):
        backup.restore(other)
    for a, b in zip(other.get_weights(), weights, strict=True):
        np.testing.assert_array_equal(a, b)
    # So is a damaged state.
    state = backup.state()
    state["random_state"][3] = [1, 2, 3]
    (tmp_path / "backup" / "state.json").write_text(json.dumps(state))
    with pytest.raises(ValueError, match="damaged"):
        backup.restore(built_model())
