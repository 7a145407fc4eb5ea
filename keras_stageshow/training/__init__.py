"""Training pieces: the paper's learning-rate schedule, loss and metric, and
a backup that resumes to the step."""

from keras_stageshow.training.losses import MaskedSparseCategoricalCrossentropy
from keras_stageshow.training.metrics import MaskedAccuracy
from keras_stageshow.training.backup import StepBackup
from keras_stageshow.training.schedule import TransformerSchedule
