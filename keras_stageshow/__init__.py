"""keras_stageshow: the encoder-decoder Transformer as a stage show.

The encoder is a stage show (`StageShow`), the decoder is the Oscar award
assessment (`OscarAssessment`); see the README for the stage-name <-> paper
table. Importing the package changes no global Keras or TensorFlow setting.

The names below are imported when first used (PEP 562), so `import
keras_stageshow` loads neither Keras nor TensorFlow: the `stageshow` command
line (`keras_stageshow.cli`) sets TensorFlow's log level before TensorFlow
loads. `keras.saving.load_model` finds the library's classes once their
module is imported: name one first (`from keras_stageshow import
Transformer`), or load a RUN_DIR with `Translator.load`.
"""

import importlib

__version__ = "0.1.0"

# Public name -> the module that defines it.
_PUBLIC = {
    **dict.fromkeys(
        (
            "Adjust", "AskQuestions", "AssessmentDiscussion", "AssessmentRound",
            "CrewDiscussion", "OscarAssessment", "PracticeRound", "Preprocess",
            "Rehearsal", "StageShow", "Voting", "WatchShow",
        ),
        "keras_stageshow.layers",
    ),
    "Transformer": "keras_stageshow.models",
    "Translator": "keras_stageshow.models",
    "TranslatorPreprocessor": "keras_stageshow.models",
    "GreedySampler": "keras_stageshow.decoding",
    "BeamSampler": "keras_stageshow.decoding",
    "RandomSampler": "keras_stageshow.decoding",
    "SubwordTokenizer": "keras_stageshow.tokenizers",
    "MaskedAccuracy": "keras_stageshow.training",
    "MaskedSparseCategoricalCrossentropy": "keras_stageshow.training",
    "TransformerSchedule": "keras_stageshow.training",
    "export_for_serving": "keras_stageshow.serving",
}
_SUBPACKAGES = (
    "datasets", "decoding", "layers", "models", "tokenizers", "training",
)
__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
    elif name in _SUBPACKAGES:
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module 'keras_stageshow' has no attribute {name!r}")
    globals()[name] = value  # later lookups skip `__getattr__`
    return value


def __dir__():
    return sorted({*globals(), *_PUBLIC, *_SUBPACKAGES})
