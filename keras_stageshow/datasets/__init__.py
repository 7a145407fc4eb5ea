"""Datasets: Multi30k, the user's own parallel files, generated tasks, which
of them a run trains and is scored on, and the tf.data pipeline that
batches them by length."""

from keras_stageshow.datasets.multi30k import load_multi30k
from keras_stageshow.datasets.parallel_files import load_parallel_files
from keras_stageshow.datasets.parallel_files import load_tsv
from keras_stageshow.datasets.pipeline import make_translation_dataset
from keras_stageshow.datasets.splits import load_test_pairs
from keras_stageshow.datasets.splits import load_training_pairs
from keras_stageshow.datasets.synthetic import copy_or_reverse
