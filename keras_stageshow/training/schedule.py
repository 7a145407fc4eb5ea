"""`TransformerSchedule`: the paper's warmup then inverse-square-root learning
rate, with an optional linear cooldown to zero at the end of a run."""

import keras
from keras import ops

from keras_stageshow.layers.utils import is_int


@keras.saving.register_keras_serializable(package="keras_stageshow")
class TransformerSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """The paper's learning rate: linear warmup, then inverse square root.

    `lr = scale * d_model^-0.5 * min(step^-0.5, step * warmup_steps^-1.5)`
    (paper section 5.3), with `step` counted from 1. The peak, reached at
    `warmup_steps`, is `scale * (d_model * warmup_steps)^-0.5`.

    With `cooldown_steps=(start, end)`, the rate from optimizer iteration
    `start` on is also multiplied by `(end - iteration) / (end - start)`:
    it falls linearly to zero at iteration `end`, the run's last step (the
    "cooldown" of warmup-stable-decay schedules; Hägele et al., 2024, show
    it matching a cosine schedule of the same length). `stageshow train`
    plans it from the run's budget (`training/cooldown.py`).

    Args:
        d_model: int, the model width.
        warmup_steps: int, steps of linear warmup (4000 in the paper).
        scale: float, multiplies the whole schedule (1.0 in the paper;
            small models on small data often like 2.0).
        cooldown_steps: None (no cooldown: the paper's schedule), or a pair
            of ints `(start, end)`, `0 <= start < end`: the optimizer
            iterations where the linear cooldown begins and where the rate
            reaches zero.

    Example:
    >>> schedule = TransformerSchedule(d_model=512)
    >>> optimizer = keras.optimizers.Adam(schedule, 0.9, 0.98, 1e-9)
    >>> # 20 epochs of 245 steps, the last 20% of them cooling down:
    >>> schedule = TransformerSchedule(256, 600, 0.7, cooldown_steps=(3920, 4900))

    References:
        - [Vaswani et al., 2017](https://arxiv.org/abs/1706.03762), 5.3
        - [Hägele et al., 2024](https://arxiv.org/abs/2405.18392)
    """

    def __init__(self, d_model, warmup_steps=4000, scale=1.0, cooldown_steps=None):
        if d_model <= 0 or warmup_steps <= 0:
            raise ValueError(
                "`d_model` and `warmup_steps` must be positive; received "
                f"d_model={d_model}, warmup_steps={warmup_steps}."
            )
        self.d_model = int(d_model)
        self.warmup_steps = int(warmup_steps)
        self.scale = float(scale)
        if cooldown_steps is not None:
            start, end = cooldown_steps
            if not (is_int(start) and is_int(end) and 0 <= start < end):
                raise ValueError(
                    "`cooldown_steps` must be None or a pair of ints "
                    "(start, end) with 0 <= start < end: the iterations where "
                    "the learning rate starts falling and where it reaches 0; "
                    f"received {cooldown_steps!r}."
                )
            cooldown_steps = (int(start), int(end))
        self.cooldown_steps = cooldown_steps

    def __call__(self, step):
        iteration = ops.cast(step, "float32")
        step = iteration + 1.0
        warmup = ops.cast(self.warmup_steps, "float32")
        rate = ops.minimum(ops.rsqrt(step), step * warmup**-1.5)
        rate = self.scale * self.d_model**-0.5 * rate
        if self.cooldown_steps is not None:
            start, end = self.cooldown_steps
            rate = rate * ops.clip((end - iteration) / (end - start), 0.0, 1.0)
        return rate

    def get_config(self):
        return {
            "d_model": self.d_model,
            "warmup_steps": self.warmup_steps,
            "scale": self.scale,
            "cooldown_steps": (
                None if self.cooldown_steps is None else list(self.cooldown_steps)
            ),
        }
