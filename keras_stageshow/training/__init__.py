"""Training pieces: the paper's learning-rate schedule (and its cooldown to
zero, `cooldown_steps_for`), Adam with a fused
update, loss and metric, a backup that resumes to the step, and checkpoint
averaging; a run's recipe (`recipe.py`) and the pace it times to choose
its dropout (`pace.py`), tokenizers, callbacks, and the run itself
(`run.train_translation_run`, what `stageshow train` calls)."""

from keras_stageshow.training.losses import MaskedSparseCategoricalCrossentropy
from keras_stageshow.training.metrics import MaskedAccuracy
from keras_stageshow.training.averaging import LastEpochCheckpoints
from keras_stageshow.training.averaging import average_checkpoints
from keras_stageshow.training.averaging import best_of_averages
from keras_stageshow.training.backup import StepBackup
from keras_stageshow.training.cooldown import cooldown_steps_for
from keras_stageshow.training.optimizer import FusedAdam
from keras_stageshow.training.schedule import TransformerSchedule
