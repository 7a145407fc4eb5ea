"""Training pieces: the paper's learning-rate schedule, loss and metric."""

from keras_stageshow.training.losses import MaskedSparseCategoricalCrossentropy
from keras_stageshow.training.metrics import MaskedAccuracy
from keras_stageshow.training.schedule import TransformerSchedule
