"""A translator's parts (the `Transformer` and its `TranslatorPreprocessor`)
read from and written to a RUN_DIR (layout: `run_dir.py`) or a keras-hub
preset (layout: keras-hub's `preset_utils`), without the `Translator`
class, so the SavedModel export can load a RUN_DIR and the translator can
export without importing each other."""

import os

from keras_stageshow import run_dir
from keras_stageshow.files import save_model_atomically
from keras_stageshow.models.transformer import Transformer
from keras_stageshow.models.translator_preprocessor import SOURCE_TOKENIZER_CONFIG
from keras_stageshow.models.translator_preprocessor import TARGET_TOKENIZER_CONFIG
from keras_stageshow.models.translator_preprocessor import TranslatorPreprocessor
from keras_stageshow.tokenizers.subword_tokenizer import SubwordTokenizer

# keras-hub's preset files this module checks for.
PRESET_BACKBONE_CONFIG = "config.json"
PRESET_TASK_CONFIG = "task.json"
# The backbone's constructor arguments a RUN_DIR's settings record.
_MODEL_SETTINGS = (
    "num_layers", "d_model", "num_heads", "d_ff", "dropout_rate",
    "attention_dropout_rate", "max_length",
)


def build_backbone(backbone):
    """Builds a never-called backbone, so that it has weights to save."""
    if not backbone.built:
        backbone.build(((None, None), (None, None)))


def save_run_dir(backbone, preprocessor, directory):
    """Writes a RUN_DIR: `model.keras`, the two tokenizer folders and, when
    the folder has none, a `run.json` recording the model's settings."""
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    build_backbone(backbone)
    save_model_atomically(backbone, os.path.join(directory, run_dir.MODEL_FILE))
    preprocessor.source_tokenizer.save(
        os.path.join(directory, run_dir.SOURCE_TOKENIZER_DIR)
    )
    preprocessor.target_tokenizer.save(
        os.path.join(directory, run_dir.TARGET_TOKENIZER_DIR)
    )
    if not run_dir.is_run_dir(directory):
        source, target = preprocessor.source_tokenizer, preprocessor.target_tokenizer
        settings = {name: getattr(backbone, name) for name in _MODEL_SETTINGS}
        settings.update(
            vocabulary_size=target.vocabulary_size(),
            shared_vocabulary=source.proto == target.proto,
            lowercase=source.lowercase,
            strip_accents=source.strip_accents,
        )
        run_dir.write_run(
            directory,
            {"status": "complete", "settings": settings, "saved_by": "Translator.save"},
        )


def decoding_backbone(backbone, dtype=None):
    """The backbone as it decodes: under the dtype policy `dtype`, by
    default the dtype of its variables, so a model trained with a mixed
    policy (`"mixed_bfloat16"`, the training default on CPUs with AVX-512
    BF16, or `"mixed_float16"`) translates in float32. The same weights; the
    backbone itself when the policy is already that one.

    Why float32 by default (measured on a default 45-minute run, bf16, on an
    AMD EPYC with AVX-512 BF16, 2 cores; benchmarks/README.md): the library
    (XLA) and the export (no XLA) translate identically in float32 (222/222
    sentences) but not in bfloat16 (206/222: XLA and TensorFlow's kernels
    round bfloat16 differently), and one sentence is faster in float32
    (export 38.3 vs 46.8 ms). Batches of 32 are faster in bfloat16 (142.6
    vs 108.2 sentences/s): pass `dtype="mixed_bfloat16"` for throughput,
    where identity with the library is not needed.
    """
    import keras

    try:
        policy = keras.dtype_policies.get(
            backbone.dtype_policy.variable_dtype if dtype is None else dtype
        )
    except (TypeError, ValueError) as error:
        raise ValueError(
            "`dtype` must be a Keras dtype policy such as 'float32' or "
            f"'mixed_bfloat16', or None (float32); received {dtype!r}."
        ) from error
    if policy.name == backbone.dtype_policy.name:
        return backbone
    build_backbone(backbone)
    # `Transformer.from_config` returns it built.
    clone = backbone.__class__.from_config({**backbone.get_config(), "dtype": policy})
    clone.set_weights(backbone.get_weights())
    return clone


def load_run_dir(directory, dtype=None):
    """`(backbone, preprocessor)` of a RUN_DIR, loaded with
    `safe_mode=True` (no code from the folder is run), the backbone under
    `decoding_backbone`'s dtype (by default float32 for a run trained in
    mixed precision)."""
    directory = os.fspath(directory)
    run_dir.read_run(directory)  # a clear error if it is not a run
    backbone = decoding_backbone(
        run_dir.load_model(os.path.join(directory, run_dir.MODEL_FILE)), dtype
    )
    preprocessor = TranslatorPreprocessor(
        SubwordTokenizer.load(os.path.join(directory, run_dir.SOURCE_TOKENIZER_DIR)),
        SubwordTokenizer.load(os.path.join(directory, run_dir.TARGET_TOKENIZER_DIR)),
        max_length=backbone.max_length,
    )
    return backbone, preprocessor


def check_preset(preset):
    """`preset` as a string, with clear errors for what is not a preset."""
    if not isinstance(preset, (str, os.PathLike)):
        raise TypeError(
            "`preset` must be a folder or a keras-hub handle (a string); "
            f"received {type(preset).__name__}."
        )
    preset = os.fspath(preset)
    if "://" in preset:
        return preset
    if not os.path.isdir(preset):
        raise FileNotFoundError(
            f"Preset folder {preset!r} does not exist. Pass the folder "
            "`Translator.save_to_preset` wrote, or a handle such as "
            "'hf://user/model'."
        )
    if run_dir.is_run_dir(preset):
        return preset
    for name in (PRESET_BACKBONE_CONFIG, SOURCE_TOKENIZER_CONFIG, TARGET_TOKENIZER_CONFIG):
        if not os.path.isfile(os.path.join(preset, name)):
            raise FileNotFoundError(
                f"Preset folder {preset!r} has no {name}: it is not a "
                "translator preset. Write one with `Translator.save_to_preset`."
            )
    return preset


def is_preset_dir(directory):
    """A local keras-hub preset folder (and not a RUN_DIR)."""
    return (
        os.path.isdir(directory)
        and not run_dir.is_run_dir(directory)
        and os.path.isfile(os.path.join(directory, SOURCE_TOKENIZER_CONFIG))
    )


def is_backbone_only_preset(preset):
    """A local preset of earlier versions: the backbone and the two
    tokenizers, without keras-hub's `task.json`."""
    return "://" not in preset and not os.path.isfile(
        os.path.join(preset, PRESET_TASK_CONFIG)
    )


def load_backbone_only_preset(preset, dtype=None):
    """`(backbone, preprocessor)` of a preset without `task.json`, the
    backbone under `decoding_backbone`'s dtype."""
    backbone = decoding_backbone(Transformer.from_preset(preset), dtype)
    preprocessor = TranslatorPreprocessor(
        SubwordTokenizer.from_preset(preset, config_file=SOURCE_TOKENIZER_CONFIG),
        SubwordTokenizer.from_preset(preset, config_file=TARGET_TOKENIZER_CONFIG),
        max_length=backbone.max_length,
    )
    return backbone, preprocessor
