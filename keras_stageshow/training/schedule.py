"""`TransformerSchedule`: the paper's warmup then inverse-square-root learning rate."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_stageshow")
class TransformerSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """The paper's learning rate: linear warmup, then inverse square root.

    `lr = scale * d_model^-0.5 * min(step^-0.5, step * warmup_steps^-1.5)`
    (paper section 5.3), with `step` counted from 1. The peak, reached at
    `warmup_steps`, is `scale * (d_model * warmup_steps)^-0.5`.

    Args:
        d_model: int, the model width.
        warmup_steps: int, steps of linear warmup (4000 in the paper).
        scale: float, multiplies the whole schedule (1.0 in the paper;
            small models on small data often like 2.0).

    Example:
    >>> schedule = TransformerSchedule(d_model=512)
    >>> optimizer = keras.optimizers.Adam(schedule, 0.9, 0.98, 1e-9)
    """

    def __init__(self, d_model, warmup_steps=4000, scale=1.0):
        if d_model <= 0 or warmup_steps <= 0:
            raise ValueError(
                "`d_model` and `warmup_steps` must be positive; received "
                f"d_model={d_model}, warmup_steps={warmup_steps}."
            )
        self.d_model = int(d_model)
        self.warmup_steps = int(warmup_steps)
        self.scale = float(scale)

    def __call__(self, step):
        step = ops.cast(step, "float32") + 1.0
        warmup = ops.cast(self.warmup_steps, "float32")
        rate = ops.minimum(ops.rsqrt(step), step * warmup**-1.5)
        return self.scale * self.d_model**-0.5 * rate

    def get_config(self):
        return {
            "d_model": self.d_model,
            "warmup_steps": self.warmup_steps,
            "scale": self.scale,
        }
