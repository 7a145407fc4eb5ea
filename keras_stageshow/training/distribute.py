"""Workarounds for Keras's TensorFlow trainer under `tf.distribute`, in one
place: `DistributedTrainingFixes`, a mixin `Transformer` inherits.

Keras has no public hook for either behaviour below, so these override
trainer methods; `tests/test_distribution.py` trains equal to one device
with them, and `test_distribute_workarounds_still_match_keras` fails when a
Keras release renames or re-signs what they override.

1. `_maybe_symbolic_build`: Keras builds the model, under a strategy, from
   one batch reduced with "MEAN" across replicas, so token ids become float
   averages (which fail the id checks), and under
   MultiWorkerMirroredStrategy the collective reduce of a nested batch
   raises. The build needs only shapes and dtypes: one replica's batch has
   them.
2. `train_step` / `test_step` logs: under MultiWorkerMirroredStrategy Keras
   reduces each step's logs with `strategy.reduce("MEAN", value, axis=0)`,
   which fails on scalars; as shape-(1,) tensors they reduce to the same
   scalars.
"""

import keras
from keras import ops


class DistributedTrainingFixes:
    """Mixin for a `keras.Model`; see the module docstring."""

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = getattr(self, "_distribute_strategy", None)
        if strategy is None or iterator is None:
            return super()._maybe_symbolic_build(iterator, data_batch)
        import tensorflow as tf

        def one_replica(value):
            if isinstance(value, tf.distribute.DistributedValues):
                return strategy.experimental_local_results(value)[0]
            return value

        for _, _, batches in iterator:
            data_batch = keras.tree.map_structure(one_replica, next(batches))
            break
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    def train_step(self, *args, **kwargs):
        # (JAX's trainer passes `state` too, and gets `(logs, state)` back;
        # the helper leaves other backends' results as they are.)
        return reducible_across_workers(super().train_step(*args, **kwargs))

    def test_step(self, *args, **kwargs):
        return reducible_across_workers(super().test_step(*args, **kwargs))


def reducible_across_workers(logs):
    """Scalar logs as shape-(1,) tensors under MultiWorkerMirroredStrategy;
    elsewhere the logs as they are."""
    if keras.backend.backend() != "tensorflow":
        return logs
    import tensorflow as tf

    strategy = tf.distribute.get_strategy()
    extended = getattr(strategy, "extended", None)
    multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and (
        getattr(extended, "_in_multi_worker_mode", lambda: False)()
    )
    if not multi_worker:
        return logs
    return {
        name: ops.reshape(value, (1,)) if len(ops.shape(value)) == 0 else value
        for name, value in logs.items()
    }
