"""`FusedAdam` is Keras's Adam, number for number, and on TensorFlow really
runs one `ResourceApplyAdam` kernel per variable (a Keras release that
changes how Adam creates its slots makes the fused path stop applying:
these tests fail then)."""

import keras
import numpy as np
import pytest

from keras_stageshow.training import FusedAdam
from conftest import random_ids
from conftest import tiny_transformer

pytestmark = pytest.mark.tf_only


SETTINGS = dict(learning_rate=1e-2, beta_1=0.9, beta_2=0.98, epsilon=1e-9)


def adam_steps(optimizer, gradients, jit_compile=False, start=None, strategy=None):
    """Variables from `start` (or ones), after `optimizer` applied each
    list of `gradients` in turn (in a replica of `strategy` if given); then
    the optimizer's variables."""
    import tensorflow as tf

    start = start or [np.ones(g.shape, "float32") for g in gradients[0]]
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        variables = [keras.Variable(value) for value in start]
        optimizer.build(variables)

    @tf.function(jit_compile=jit_compile)
    def step(grads):
        strategy.run(optimizer.apply, args=(grads, variables))

    for grads in gradients:
        step(grads)
    return [v.numpy() for v in variables + list(optimizer.variables)]


@pytest.mark.parametrize("jit_compile", [False, True])
def test_fused_adam_updates_as_keras_adam_does(jit_compile):
    rng = np.random.default_rng(0)
    shapes = [(30, 16), (16,), (16, 48), (48, 16)]
    gradients = [
        [rng.normal(size=shape).astype("float32") for shape in shapes]
        for _ in range(5)
    ]
    start = [rng.normal(size=shape).astype("float32") for shape in shapes]
    keras_adam = adam_steps(keras.optimizers.Adam(**SETTINGS), gradients, jit_compile, start)
    fused = adam_steps(FusedAdam(**SETTINGS), gradients, jit_compile, start)
    # The variables, then iterations, learning rate, moments and velocities.
    for a, b in zip(keras_adam, fused):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert not np.allclose(fused[0], start[0])  # the steps moved the weights


@pytest.mark.parametrize("under_a_strategy", [False, True])
def test_sparse_gradients_are_applied_as_their_dense_sum(under_a_strategy):
    """An embedding lookup's gradient (`tf.IndexedSlices`, one slice per
    token, so a row can repeat) is applied as its dense equivalent, as on
    JAX and PyTorch, by the fused kernel and by Keras's update under a
    `tf.distribute` strategy alike. (Keras's Adam on TensorFlow does not sum repeated
    rows first: on these gradients it ends 0.15 away from its own dense
    result.)"""
    import tensorflow as tf

    rng = np.random.default_rng(1)
    # Rows repeat within a batch, and row 1 is in the first batch only.
    batches = [[1, 3, 1], [0, 3, 3], [0, 5, 0]]
    sparse = [
        [tf.IndexedSlices(
            rng.normal(size=(3, 4)).astype("float32"), tf.constant(rows),
            tf.constant([6, 4]),
        )]
        for rows in batches
    ]
    dense = [[tf.convert_to_tensor(g[0])] for g in sparse]
    # Under a strategy, Keras's update_step runs instead of the kernel.
    strategy = (
        tf.distribute.OneDeviceStrategy("/cpu:0") if under_a_strategy
        else tf.distribute.get_strategy()
    )
    with strategy.scope():
        optimizer = FusedAdam(**SETTINGS)
    fused = adam_steps(optimizer, sparse, strategy=strategy)
    keras_dense = adam_steps(keras.optimizers.Adam(**SETTINGS), dense)
    for a, b in zip(keras_dense, fused):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_every_variable_of_the_model_updates_in_one_kernel():
    import tensorflow as tf

    model = tiny_transformer()
    model.compile()
    ids = random_ids(2, 5)
    model((ids, ids))
    optimizer = model.optimizer
    assert isinstance(optimizer, FusedAdam)
    variables = model.trainable_variables
    optimizer.build(variables)
    assert all(optimizer.is_fused(v) for v in variables)

    @tf.function
    def apply():
        optimizer.apply([tf.ones_like(v) for v in variables], variables)

    graph = apply.get_concrete_function().graph
    kinds = [op.type for op in graph.get_operations()]
    assert kinds.count("ResourceApplyAdam") == len(variables)


def test_fused_adam_round_trips_its_config_and_a_saved_model(tmp_path):
    optimizer = FusedAdam(learning_rate=3e-4, beta_2=0.98, epsilon=1e-9)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(restored, FusedAdam)
    assert restored.get_config() == optimizer.get_config()

    keras.utils.set_random_seed(1)
    model = tiny_transformer()
    model.compile()
    ids = random_ids(16, 7)
    model.fit((ids, ids), ids, batch_size=4, epochs=2, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.optimizer, FusedAdam)
    for a, b in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
