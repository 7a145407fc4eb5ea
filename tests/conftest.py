import gc
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import keras_stageshow as ks  # noqa: E402
from caption_corpus import write_caption_corpus  # noqa: E402

TINY = dict(num_layers=2, d_model=16, num_heads=2, d_ff=32, max_length=24)


DATA_DIRS = (
    os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "multi30k"),
    "/work/shared/data/multi30k",
)


def pytest_collection_modifyitems(config, items):
    """Tests marked `tf_only` (tokenizers, tf.data, the SavedModel export,
    tf.distribute, TensorFlow ops) are skipped under another Keras backend
    (`KERAS_BACKEND=jax` or `torch`, the CI's backend step). Tests that use
    the `trained_model` fixture get the `trained_model` marker, so a run can
    select or deselect them (`-m "not trained_model"`); since the fixture
    loads a committed file instead of training, the CI runs them on every
    backend."""
    name = keras.backend.backend()
    skip = pytest.mark.skip(reason=f"TensorFlow only; the backend is {name!r}")
    for item in items:
        if "trained_model" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.trained_model)
        if name != "tensorflow" and "tf_only" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """A Multi30k-layout folder of generated German-English captions
    (tests/caption_corpus.py), the same on every machine: the suite needs no
    download and no copy of Multi30k."""
    return write_caption_corpus(tmp_path_factory.mktemp("captions"))


@pytest.fixture(scope="session")
def multi30k_dir():
    """The real Multi30k raw files (../shared/data/multi30k, or
    `STAGESHOW_MULTI30K`), for the tests about those files; they skip where
    the files are absent (a fresh machine: the package must not ship them)."""
    candidates = [os.environ.get("STAGESHOW_MULTI30K"), *DATA_DIRS]
    for path in filter(None, candidates):
        if os.path.isfile(os.path.join(path, "val.de.gz")):
            return path
    pytest.skip(
        f"Multi30k raw files not found in {DATA_DIRS}; set STAGESHOW_MULTI30K "
        "to a folder with them to run this test."
    )


@pytest.fixture(autouse=True)
def _frozen_heap():
    """Keeps the objects alive before a test out of the garbage collector's
    sight while it runs (`gc.freeze`; `gc.unfreeze` gives them back after).
    Keras's `Layer.__delattr__` calls `gc.collect()` for every variable it
    deletes, and `quantize` deletes each float kernel: late in this suite's
    one long process, with the earlier tests' traced functions alive, each
    of those collections took about 2 s, and an int8 test 60 to 75 s
    (pytest --durations). The test's own garbage is collected as usual."""
    gc.freeze()
    yield
    gc.unfreeze()


@pytest.fixture(autouse=True)
def _isolate_keras_state():
    """Each test starts from float32, a fixed seed and a clean session."""
    keras.config.set_dtype_policy("float32")
    keras.utils.set_random_seed(1234)
    yield
    keras.config.set_dtype_policy("float32")


def tiny_transformer(vocab=30, target_vocab=None, **overrides):
    kwargs = dict(TINY, dropout_rate=0.0)
    kwargs.update(overrides)
    return ks.Transformer(vocab, target_vocab or vocab, **kwargs)


def script_output(process, timeout=600):
    """The JSON object that a test's training script (run with `sys.executable`
    in a `subprocess.Popen` with text pipes) prints on its last line; fails
    with the end of its stderr when it exits with an error."""
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def random_ids(batch, length, vocab=30, seed=0, min_id=4):
    rng = np.random.default_rng(seed)
    return rng.integers(min_id, vocab, size=(batch, length)).astype("int32")


def stage_translator(vocabulary_size=100, max_length=40, **overrides):
    """An untrained tiny `Translator` with a tokenizer learned on the stage
    language (one shared vocabulary), built under the current dtype policy;
    `overrides` go to `tiny_transformer` (e.g. `num_layers=1`)."""
    from keras_stageshow.datasets.synthetic import stage_language_pairs

    source, target = stage_language_pairs(300, seed=0)
    tok = ks.SubwordTokenizer.train([source, target], vocabulary_size=vocabulary_size)
    model = tiny_transformer(
        vocab=tok.vocabulary_size(), max_length=max_length, **overrides
    )
    return ks.Translator(model, tok, tok)


TRAINED_MODEL = os.path.join(os.path.dirname(__file__), "fixtures", "copy_or_reverse.keras")


@pytest.fixture(scope="session")
def trained_model():
    """A tiny Transformer trained on copy-or-reverse with tf.data and fit
    (14 epochs), loaded from `fixtures/copy_or_reverse.keras` (written once
    by `fixtures/make_trained_model.py`) and compiled with the recipe it was
    trained with, so `evaluate` works too."""
    model = keras.saving.load_model(TRAINED_MODEL, safe_mode=True)
    assert isinstance(model, ks.Transformer)
    model.compile(warmup_steps=400, learning_rate_scale=0.7, label_smoothing=0.0)
    return model


# A tiny training run's settings (`train_tiny_run`). Dropout off: tests
# compare a resumed run weight for weight with an uninterrupted one, which
# tests the run, not the random numbers.
TINY_RUN = dict(
    num_layers=1, d_model=16, num_heads=2, d_ff=32, max_length=40,
    vocabulary_size=100, tokens_per_batch=256, warmup_steps=10,
    dtype_policy="float32", average_last=0, dropout_rate=0.0,
)


def train_tiny_run(out, verbose=0, **settings):
    """`train_translation_run` of a tiny model on 160 pairs of the stage
    language (40 to validate), `TINY_RUN` updated with `settings`, into
    the RUN_DIR `out`, silent unless given `verbose`; returns its run.json
    content."""
    from keras_stageshow.datasets.synthetic import stage_language_pairs
    from keras_stageshow.training.run import train_translation_run

    source, target = stage_language_pairs(200, seed=1)
    return train_translation_run(
        str(out), (source[:160], target[:160]), (source[160:], target[160:]),
        verbose=verbose, **{**TINY_RUN, **settings},
    )


class FakeTime(keras.callbacks.Callback):
    """A clock for `RunProgress` that training moves: `per_batch` seconds a
    batch, and `trace` more for the first batch of each `fit`."""

    def __init__(self, per_batch, trace):
        super().__init__()
        self.per_batch, self.trace, self.now = per_batch, trace, 0.0

    def on_train_begin(self, logs=None):
        self.first = True

    def on_train_batch_begin(self, batch, logs=None):
        self.now += self.per_batch + (self.trace if self.first else 0.0)
        self.first = False
