"""The awards ceremony as a SavedModel that TF Serving can run: strings in,
translations out, with no Python in the graph.

`export_for_serving` writes `EXPORT_DIR/<version>/` (the layout TF Serving
watches) with three signatures:

- `serving_default`: `text` (string `[None]`) -> `translation` (string
  `[None]`) and `score` (float32 `[None]`, the sum of the tokens'
  log-probabilities), by greedy decoding;
- `beam_search`: the same inputs and outputs, by beam search with the beams
  and length penalty fixed at export; `score` is the length-penalized one;
- `serve`: the model itself, `source_ids` and `target_ids` (int32
  `[None, None]`) -> `logits` (float32 `[None, None, target_vocab]`), like
  Keras's `model.export` (with the output named), for clients that
  tokenize themselves.

The text signatures hold everything a translation needs as graph ops: the
SentencePiece models (saved as assets and read by tensorflow-text's ops),
the normalization, truncation to the model's `max_length`, the cached
decoding loop and detokenization. Only TensorFlow core ops and
tensorflow-text ops are used (both are in the TF Serving binary), so the
export loads with `tf.saved_model.load` after `import tensorflow_text` and
nothing else. Beside it, `assets.extra/` holds TF Serving's warm-up requests
and batching parameters (`tf_serving_files.py`).

The text signatures run the same code as `Translator.translate(texts,
batch_size=...)`: `AwardsCeremony.translate` (keras_stageshow/decoding/),
traced into the graph instead of run eagerly. Invalid UTF-8 bytes in a
request's strings become U+FFFD (the other strings are not affected); a
request is taken 1024 strings at a time (`REQUEST_CHUNK`, rounded up to
whole batches), so a request of any size runs in the memory of one chunk.
Blank strings give `""` (score 0) without running the model, the other
sentences are sorted by length and decoded `batch_size` at a time in the
same shape buckets, so on the same device the arithmetic, and the
translations, are the same. The
graph's decoding loop is free of XLA-only ops (TF Serving runs XLA on CPU
only behind `--xla_cpu_compilation_enabled`): its key/value cache is
written in place with TensorFlow's core `InplaceUpdate`
(`layers/kv_cache.py`), so a step's cost does not grow with the steps
already done.
"""

import json
import os
import re
import shutil
import tempfile

import tensorflow as tf

from keras_stageshow.decoding.ceremony import AwardsCeremony
from keras_stageshow.decoding.ceremony import check_max_new_tokens
from keras_stageshow.decoding.samplers import BeamSampler
from keras_stageshow.decoding.samplers import GreedySampler
from keras_stageshow.files import current_umask
from keras_stageshow.files import write_json_atomically
from keras_stageshow.generation_options import DEFAULTS
from keras_stageshow.layers.utils import is_int
from keras_stageshow.models.translator_files import build_backbone
from keras_stageshow.models.translator_files import decoding_backbone
from keras_stageshow.models.translator_files import load_run_dir
from keras_stageshow.models.translator_preprocessor import pack_sources
from keras_stageshow.tf_serving_files import ASSETS_EXTRA
from keras_stageshow.tf_serving_files import write_batching_parameters
from keras_stageshow.tf_serving_files import write_warmup_requests
from keras_stageshow.tokenizers.text import visible_ids

SIGNATURES = {
    "serving_default": "text -> translation, score (greedy)",
    "beam_search": "text -> translation, score (beam search)",
    "serve": "source_ids, target_ids -> logits",
}
TEXT_SIGNATURES = ("serving_default", "beam_search")
TEXT_INPUT = "text"
_PARTIAL = ".partial-"


def export_for_serving(
    translator,
    export_dir,
    version=None,
    num_beams=DEFAULTS.num_beams,
    length_penalty=DEFAULTS.length_penalty,
    max_new_tokens=DEFAULTS.max_new_tokens,
    batch_size=DEFAULTS.batch_size,
    dtype=None,
    jit_compile=False,
):
    """Exports a trained translator as a SavedModel for TF Serving.

    Writes `export_dir/<version>/saved_model.pb` with its `variables/`,
    `assets/` (the two SentencePiece models) and `assets.extra/`:
    `stageshow.json` (what was exported, with which options and versions),
    TF Serving's `tf_serving_warmup_requests` and a
    `batching_parameters.txt` for `batch_size` (`tf_serving_files.py`).
    The version is written to a hidden temporary folder first and renamed
    into place at the end, so an interrupted export never leaves a
    half-written version for TF Serving to load.

    Args:
        translator: a `Translator`, or the path of a RUN_DIR (what
            `stageshow train` writes).
        export_dir: str, the model's base path (`--model_base_path` of
            `tensorflow_model_server`); created if missing.
        version: int > 0, the version folder. By default, one more than
            the largest version already there (1 for a new folder). An
            existing version is never overwritten.
        num_beams, length_penalty: the `beam_search` signature's beams and
            alpha (fixed at export).
        max_new_tokens: int, tokens each translation may have at most.
            By default each sentence may have its own source length + 50
            (the paper), capped at the model's `max_length`. Sources longer
            than `max_length` are truncated to it (the end token kept), as
            `Translator` does.
        batch_size: int, sentences decoded together inside the graph (a
            request's sentences are sorted by length first). The
            translations equal `Translator.translate(texts,
            batch_size=batch_size)`'s.
        dtype: the compute dtype policy of the exported graph. By default
            the dtype of the model's variables: float32 for a model trained
            in mixed precision, which then translates exactly as
            `Translator.load(run)` does (`decoding_backbone` says why and
            what was measured). `"mixed_bfloat16"` serves batches faster on
            CPUs with AVX-512 BF16, but not identically to the library.
        jit_compile: bool, compile the decoding loop with XLA inside the
            graph (an opt-in; the default graph has no XLA ops). XLA fuses
            each step's small ops, as it does for `Translator` in Python,
            and compiles once per shape bucket when first met. TF Serving
            runs it on CPU only with `--xla_cpu_compilation_enabled=true`
            (experimental), and its GPU builds have failed on XLA-annotated
            functions (tensorflow/serving #2214, #2217).

    Returns:
        The path of the written version folder.

    Example:
    >>> path = export_for_serving("runs/multi30k", "serving/translator")
    >>> import tensorflow as tf, tensorflow_text  # in any TF process
    >>> served = tf.saved_model.load(path)
    >>> served.signatures["serving_default"](text=tf.constant(["Ein Hund."]))
    {'translation': <tf.Tensor: ... [b'A dog.']>, 'score': ...}
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            "Exporting for TF Serving needs the TensorFlow backend; set "
            "KERAS_BACKEND=tensorflow (the backend of this process is "
            f"{keras.backend.backend()!r})."
        )
    if isinstance(translator, (str, os.PathLike)):
        backbone, preprocessor = load_run_dir(translator, dtype)
    elif hasattr(translator, "backbone") and hasattr(translator, "preprocessor"):
        backbone = decoding_backbone(translator.backbone, dtype)
        preprocessor = translator.preprocessor
    else:
        raise TypeError(
            "`translator` must be a `Translator` or the path of a RUN_DIR; "
            f"received {type(translator).__name__}."
        )
    beam = BeamSampler(num_beams=num_beams, length_penalty=length_penalty).check(
        backbone.target_vocab_size
    )
    max_new_tokens = check_max_new_tokens(max_new_tokens, backbone.max_length)
    if not is_int(batch_size) or batch_size < 1:
        raise ValueError(
            f"`batch_size` must be an int >= 1; received {batch_size!r}."
        )
    if not isinstance(jit_compile, bool):
        raise ValueError(f"`jit_compile` must be True or False; received {jit_compile!r}.")
    build_backbone(backbone)
    if not isinstance(export_dir, (str, os.PathLike)):
        raise TypeError(
            f"`export_dir` must be a path; received {type(export_dir).__name__}."
        )
    export_dir = os.fspath(export_dir)
    if os.path.exists(export_dir) and not os.path.isdir(export_dir):
        raise ValueError(
            f"`export_dir` {export_dir!r} is a file; pass a folder (the "
            "model's base path, which holds one folder per version)."
        )
    os.makedirs(export_dir, exist_ok=True)
    version = _check_version(export_dir, version)

    options = {
        "jit_compile": jit_compile,
        "num_beams": beam.num_beams,
        "length_penalty": beam.length_penalty,
        "max_new_tokens": max_new_tokens,
        "batch_size": int(batch_size),
    }
    staging = tempfile.mkdtemp(prefix=f".{version}{_PARTIAL}", dir=export_dir)
    try:
        with tempfile.TemporaryDirectory() as files:
            root, signatures = _build_module(backbone, preprocessor, options, files)
            tf.saved_model.save(root, staging, signatures=signatures)
        write_json_atomically(
            os.path.join(staging, ASSETS_EXTRA, "stageshow.json"),
            _description(backbone, preprocessor, options),
        )
        write_warmup_requests(
            staging, TEXT_SIGNATURES, TEXT_INPUT, options["batch_size"],
            backbone.max_length,
        )
        write_batching_parameters(staging, options["batch_size"])
        # `mkdtemp` makes a private (0700) folder; a TF Serving process
        # running as another user must be able to read the version.
        os.chmod(staging, 0o777 & ~current_umask())
        target = os.path.join(export_dir, str(version))
        if os.path.exists(target):
            raise FileExistsError(
                f"Version {version} appeared in {export_dir!r} while exporting "
                "(another export?); it was left as it is. Export again."
            )
        os.rename(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def exported_versions(export_dir):
    """The complete versions in `export_dir`, as sorted ints (what TF
    Serving would see; partial exports are hidden folders and not listed)."""
    if not os.path.isdir(export_dir):
        return []
    names = os.listdir(export_dir)
    return sorted(int(n) for n in names if re.fullmatch(r"[0-9]+", n))


def _check_version(export_dir, version):
    versions = exported_versions(export_dir)
    if version is None:
        return (versions[-1] + 1) if versions else 1
    if not is_int(version) or version < 1:
        raise ValueError(
            f"`version` must be an int >= 1 (TF Serving's version folders are "
            f"numbers); received {version!r}."
        )
    if version in versions:
        raise FileExistsError(
            f"Version {version} already exists in {export_dir!r}; exports are "
            "never overwritten. Pick another `version`, or leave it out to "
            f"write the next one ({versions[-1] + 1})."
        )
    return int(version)


def _description(model, preprocessor, options):
    import tensorflow_text as tf_text

    from keras_stageshow import __version__

    return {
        "exported_by": f"keras_stageshow {__version__}",
        # A TF Serving release should match the TensorFlow that exported.
        "versions": {
            "keras_stageshow": __version__,
            "tensorflow": tf.__version__,
            "tensorflow_text": tf_text.__version__,
        },
        "signatures": SIGNATURES,
        "options": options,
        "truncation": (
            f"sources are cut to {model.max_length - 1} subwords plus the "
            "end token"
        ),
        "model": model.get_config(),
        "source_tokenizer": preprocessor.source_tokenizer.run_dir_config(),
        "target_tokenizer": preprocessor.target_tokenizer.run_dir_config(),
    }


def _build_module(model, preprocessor, options, files):
    """The SavedModel's root: the model's variables, the tokenizers, their
    files as assets, and the three signatures.

    Keras's `ExportArchive` saves the variables and resources its endpoints
    use, but not extra files; the tokenizer files must travel as
    `tf.saved_model.Asset`s, so the root is a plain `tf.Module` (holding the
    same `tf.Variable`s the endpoints read).
    """
    root = tf.Module()
    # Keras variables wrap `tf.Variable`s; the traced functions capture those.
    root.model_variables = [variable.value for variable in model.variables]
    root.preprocessor = _ServingPreprocessor(preprocessor, files)
    # The library's decoding core, traced inline into the signatures
    # (without XLA unless asked for).
    ceremony = AwardsCeremony(model, jit_compile=options["jit_compile"], traced=False)
    samplers = {
        "greedy": GreedySampler(),
        "beam": BeamSampler(options["num_beams"], options["length_penalty"]),
    }

    def translate(text, strategy):
        translations, scores = ceremony.translate(
            text, root.preprocessor, samplers[strategy], options["batch_size"],
            options["max_new_tokens"],
        )
        return {"translation": translations, "score": scores}

    text = tf.TensorSpec([None], tf.string, name=TEXT_INPUT)
    root.translate = tf.function(
        lambda text: translate(text, "greedy"),
        input_signature=[text],
        autograph=False,
    )
    root.translate_beam = tf.function(
        lambda text: translate(text, "beam"),
        input_signature=[text],
        autograph=False,
    )
    root.logits = tf.function(
        lambda source_ids, target_ids: {
            "logits": model((source_ids, target_ids), training=False)
        },
        input_signature=[
            tf.TensorSpec([None, None], tf.int32, name="source_ids"),
            tf.TensorSpec([None, None], tf.int32, name="target_ids"),
        ],
        autograph=False,
    )
    signatures = {
        "serving_default": root.translate.get_concrete_function(),
        "beam_search": root.translate_beam.get_concrete_function(),
        "serve": root.logits.get_concrete_function(),
    }
    return root, signatures


class _ServingPreprocessor(tf.Module):
    """The `TranslatorPreprocessor` inside the SavedModel: the same
    normalization, truncation (`pack_sources`) and id clean-up
    (`visible_ids`), with each side's SentencePiece op made here.

    Why not the preprocessor's own tokenizers: tensorflow-text's
    SentencePiece op takes the model as an attribute of the graph node and
    keeps it in a resource named after the node; keras-hub makes the op
    with tensorflow-text's default name, so in a loaded SavedModel the two
    sides would share one resource (the first model made). Here each side's
    op has its own name. The tokenizer files also travel as assets
    (`assets/<side>.sentencepiece.model`, `assets/<side>.tokenizer.json`)
    for clients that call the `serve` signature and tokenize themselves.
    """

    def __init__(self, preprocessor, files):
        super().__init__(name="preprocessor")
        import tensorflow_text as tf_text

        self.max_length = preprocessor.max_length
        self.configs = {}
        self.ops = {}
        self.assets = []
        for side, tokenizer in (
            ("source", preprocessor.source_tokenizer),
            ("target", preprocessor.target_tokenizer),
        ):
            model_path = os.path.join(files, f"{side}.sentencepiece.model")
            with open(model_path, "wb") as f:
                f.write(tokenizer.proto)
            config_path = os.path.join(files, f"{side}.tokenizer.json")
            with open(config_path, "w", encoding="utf-8") as f:
                json.dump(tokenizer.run_dir_config(), f, indent=2, sort_keys=True)
            self.assets += [tf.saved_model.Asset(model_path), tf.saved_model.Asset(config_path)]
            self.configs[side] = tokenizer
            self.ops[side] = tf_text.SentencepieceTokenizer(
                model=tokenizer.proto, out_type="int32", name=f"{side}_sentencepiece"
            )

    def encode_sources(self, texts):
        pieces = self.ops["source"].tokenize(self.configs["source"].normalize(texts))
        ids = pack_sources(pieces, self.max_length)
        return ids.to_tensor(), tf.cast(ids.row_lengths(), tf.int32)

    def detokenize(self, ids):
        target = self.configs["target"]
        return self.ops["target"].detokenize(visible_ids(ids, target.vocabulary_size()))


def read_export_description(version_dir):
    """The `assets.extra/stageshow.json` an export wrote, as a dict."""
    path = os.path.join(version_dir, ASSETS_EXTRA, "stageshow.json")
    with open(path, encoding="utf-8") as f:
        return json.load(f)
