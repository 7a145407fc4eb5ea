"""The paper's training recipe as `compile()` arguments, written once for
`Transformer.compile` and `Translator.compile`: Adam(0.9, 0.98, 1e-9) on
the warm-up schedule (section 5.3), cross-entropy with label smoothing 0.1
over the real tokens (section 5.4), and masked token accuracy."""

from keras_stageshow.training.losses import MaskedSparseCategoricalCrossentropy
from keras_stageshow.training.metrics import MaskedAccuracy
from keras_stageshow.training.optimizer import FusedAdam
from keras_stageshow.training.schedule import TransformerSchedule

LABEL_SMOOTHING = 0.1
WARMUP_STEPS = 4000
LEARNING_RATE_SCALE = 1.0


def paper_compile_arguments(
    d_model,
    optimizer=None,
    loss=None,
    metrics=None,
    label_smoothing=LABEL_SMOOTHING,
    warmup_steps=WARMUP_STEPS,
    learning_rate_scale=LEARNING_RATE_SCALE,
    cooldown_steps=None,
):
    """`{"optimizer", "loss", "metrics"}`: each one given is kept, each
    `None` becomes the paper's (`label_smoothing`, `warmup_steps`,
    `learning_rate_scale` and `cooldown_steps` tune those)."""
    if optimizer is None:
        schedule = TransformerSchedule(
            d_model, warmup_steps, scale=learning_rate_scale,
            cooldown_steps=cooldown_steps,
        )
        # FusedAdam: Keras's Adam, one kernel a variable on TensorFlow.
        optimizer = FusedAdam(schedule, beta_1=0.9, beta_2=0.98, epsilon=1e-9)
    if loss is None:
        loss = MaskedSparseCategoricalCrossentropy(label_smoothing=label_smoothing)
    if metrics is None:
        metrics = [MaskedAccuracy()]
    return {"optimizer": optimizer, "loss": loss, "metrics": metrics}
