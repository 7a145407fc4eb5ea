"""`FusedAdam`: Keras's Adam, with each variable's update one TensorFlow
kernel instead of about a dozen ops, and sparse gradients applied as their
dense sum.

Why our own, in order of weight:

- **Sparse gradients.** An embedding lookup's gradient on TensorFlow is a
  `tf.IndexedSlices` with one row per token, so a row repeats when a token
  does. Keras's Adam on TensorFlow applies such a gradient without summing
  the repeated rows first, and ends elsewhere than the same Adam on the
  dense gradient, which is what the JAX and PyTorch backends compute
  (0.15 apart after three steps in `tests/test_fused_adam.py`). This hits
  `Transformer`'s source embedding whenever `share_embeddings=False` (the
  default). `FusedAdam` applies the dense sum on every path.
- **One kernel a variable.** Keras's `Adam.update_step` runs each
  variable's update as separate ops (casts, two powers, a square root,
  then the moment and variable updates); TensorFlow's `ResourceApplyAdam`
  does the same update, by the same formula, in one pass. Measured on
  2 AMD EPYC cores at the issue-6 size (benchmarks/README.md, section 5):
  Adam's op time fell from about 50 to 34 ms a step and the step's wall
  time by about 1% (`fused_adam_speedup` in train_throughput.py), so on a
  CPU this is housekeeping; it removes ~1,400 op launches a step, which
  is what costs on a GPU without XLA.

Everything else (the schedule, weight decay, gradient clipping, loss
scaling, saving) is Keras's Adam: this class only extends two public
methods, `add_optimizer_variables` (to note which slots belong to which
variable) and `update_step` (the hook Keras documents for writing
optimizers).
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_stageshow")
class FusedAdam(keras.optimizers.Adam):
    """Adam with a fused update on the TensorFlow backend.

    The update is Keras's `Adam` (Kingma and Ba, 2015): with
    `alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)`,
    `m += (g - m) * (1 - beta_1)`, `v += (g^2 - v) * (1 - beta_2)`,
    `w -= alpha * m / (sqrt(v) + epsilon)`. On TensorFlow, outside a
    `tf.distribute` strategy, it runs as TensorFlow's `ResourceApplyAdam`
    kernel, one op a variable; elsewhere (JAX, PyTorch, under a strategy,
    `amsgrad=True`) it is Keras's `Adam.update_step`. On TensorFlow, a
    sparse gradient (`tf.IndexedSlices`) is applied as its dense sum on
    either path. The optimizer's
    variables are Adam's, in Adam's order, so checkpoints and `StepBackup`s
    move between the two.

    Args:
        Those of `keras.optimizers.Adam`, unchanged.

    Example:
    >>> optimizer = FusedAdam(TransformerSchedule(512), 0.9, 0.98, 1e-9)
    >>> model.compile(optimizer=optimizer)

    References:
        - [Kingma and Ba, 2015](https://arxiv.org/abs/1412.6980)
        - [Vaswani et al., 2017](https://arxiv.org/abs/1706.03762), 5.3
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # `tf.Variable.ref()` of a model variable -> its (momentum,
        # velocity) `tf.Variable`s, filled as Adam's `build` creates them.
        self.fused_slots = {}

    def add_optimizer_variables(self, trainable_variables, name, initializer="zeros"):
        created = super().add_optimizer_variables(trainable_variables, name, initializer)
        # Adam's `build` asks for both slots at once; the lists follow
        # `trainable_variables` unless Keras skipped some (variables
        # overwritten with their gradient have none): then nothing fuses.
        names = [name] if isinstance(name, str) else list(name)
        aligned = all(len(slots) == len(trainable_variables) for slots in created)
        if (
            keras.backend.backend() == "tensorflow"
            and names == ["momentum", "velocity"]
            and aligned
        ):
            for variable, m, v in zip(trainable_variables, *created):
                self.fused_slots[variable.value.ref()] = (m.value, v.value)
        return created

    def is_fused(self, variable):
        """Whether `variable`'s update runs as one fused kernel (after
        `build`; outside a `tf.distribute` strategy)."""
        value = getattr(variable, "value", variable)
        return not self.amsgrad and value.ref() in self.fused_slots

    def update_step(self, gradient, variable, learning_rate):
        # On TensorFlow, Keras passes the model variable's `tf.Variable`.
        slots = None
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            if isinstance(gradient, tf.IndexedSlices):
                # Its dense sum, so that both paths below (and a
                # `tf.distribute` run, which takes Keras's) apply the same
                # update; Adam touches every row of its slots anyway.
                gradient = tf.convert_to_tensor(gradient)
            if not self.amsgrad and not tf.distribute.has_strategy():
                slots = self.fused_slots.get(variable.ref())
        if slots is None:
            return super().update_step(gradient, variable, learning_rate)
        m, v = slots
        dtype = variable.dtype
        step = ops.cast(self.iterations + 1, dtype)
        beta_1 = ops.cast(self.beta_1, dtype)
        beta_2 = ops.cast(self.beta_2, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=m.handle,
            v=v.handle,
            beta1_power=ops.power(beta_1, step),
            beta2_power=ops.power(beta_2, step),
            lr=ops.cast(learning_rate, dtype),
            beta1=beta_1,
            beta2=beta_2,
            epsilon=ops.cast(self.epsilon, dtype),
            grad=ops.cast(gradient, dtype),
            use_locking=False,
        )
