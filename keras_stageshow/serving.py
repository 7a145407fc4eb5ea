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
nothing else.

The graph translates as `Translator.translate(texts, batch_size=...)` does:
blank strings give `""` (score 0) without running the model, the other
sentences are sorted by length and decoded `batch_size` at a time, with the
same shape buckets as `Transformer.generate`, so on the same device the
arithmetic, and the translations, are the same.
"""

import json
import os
import re
import shutil
import tempfile

import tensorflow as tf

from keras_stageshow.files import current_umask
from keras_stageshow.layers.utils import is_int
from keras_stageshow.files import write_json_atomically

SIGNATURES = {
    "serving_default": "text -> translation, score (greedy)",
    "beam_search": "text -> translation, score (beam search)",
    "serve": "source_ids, target_ids -> logits",
}
_PARTIAL = ".partial-"
# Python's `str.isspace` as an RE2 class: ASCII \t-\r, the separators
# \x1c-\x1f, NEL, and Unicode's space, line and paragraph separators.
BLANK_PATTERN = r"[\t-\r\x{1c}-\x{1f}\x{85}\p{Z}]*"


def export_for_serving(
    translator,
    export_dir,
    version=None,
    num_beams=4,
    length_penalty=0.6,
    max_new_tokens=None,
    batch_size=32,
    dtype=None,
):
    """Exports a trained translator as a SavedModel for TF Serving.

    Writes `export_dir/<version>/saved_model.pb` with its `variables/`,
    `assets/` (the two SentencePiece models) and
    `assets.extra/stageshow.json` (what was exported, with which options).
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
        dtype: the compute dtype policy of the exported graph, e.g.
            `"float32"` for a model trained with `"mixed_float16"` that will
            be served on CPUs (float16 matmuls are slow there). By default,
            the model's own policy.

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

    from keras_stageshow.models.transformer import _check_strategy
    from keras_stageshow.models.translator import Translator

    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            "Exporting for TF Serving needs the TensorFlow backend; set "
            "KERAS_BACKEND=tensorflow (the backend of this process is "
            f"{keras.backend.backend()!r})."
        )
    if isinstance(translator, (str, os.PathLike)):
        translator = Translator.load(os.fspath(translator))
    if not isinstance(translator, Translator):
        raise TypeError(
            "`translator` must be a `Translator` or the path of a RUN_DIR; "
            f"received {type(translator).__name__}."
        )
    model = translator.model
    beam = _check_strategy(
        "beam",
        num_beams=num_beams,
        length_penalty=length_penalty,
        temperature=1.0,
        top_k=None,
        top_p=None,
        vocab=model.target_vocab_size,
        use_cache=True,
    )
    if max_new_tokens is not None and (
        not is_int(max_new_tokens) or not 0 < max_new_tokens <= model.max_length
    ):
        raise ValueError(
            f"`max_new_tokens` must be an int in [1, max_length="
            f"{model.max_length}] or None; received {max_new_tokens!r}."
        )
    if not is_int(batch_size) or batch_size < 1:
        raise ValueError(
            f"`batch_size` must be an int >= 1; received {batch_size!r}."
        )
    if not model.built:
        model.build(((None, None), (None, None)))
    if dtype is not None:
        translator = _with_dtype(translator, dtype)
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
        "num_beams": beam["num_beams"],
        "length_penalty": beam["length_penalty"],
        "max_new_tokens": None if max_new_tokens is None else int(max_new_tokens),
        "batch_size": int(batch_size),
    }
    staging = tempfile.mkdtemp(prefix=f".{version}{_PARTIAL}", dir=export_dir)
    try:
        with tempfile.TemporaryDirectory() as files:
            root, signatures = _build_module(translator, options, files)
            tf.saved_model.save(root, staging, signatures=signatures)
        write_json_atomically(
            os.path.join(staging, "assets.extra", "stageshow.json"),
            _description(translator, options),
        )
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


def _with_dtype(translator, dtype):
    """The translator with its model rebuilt under another dtype policy
    (same weights)."""
    import keras

    from keras_stageshow.models.translator import Translator

    model = translator.model
    policy = keras.dtype_policies.get(dtype)
    if policy.name == model.dtype_policy.name:
        return translator
    clone = model.__class__.from_config({**model.get_config(), "dtype": policy})
    clone.build(((None, None), (None, None)))
    clone.set_weights(model.get_weights())
    return Translator(clone, translator.source_tokenizer, translator.target_tokenizer)


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


def _description(translator, options):
    from keras_stageshow import __version__

    model = translator.model
    return {
        "exported_by": f"keras_stageshow {__version__}",
        "signatures": SIGNATURES,
        "options": options,
        "truncation": (
            f"sources are cut to {model.max_length - 1} subwords plus the "
            "end token"
        ),
        "model": model.get_config(),
        "source_tokenizer": translator.source_tokenizer.get_config(),
        "target_tokenizer": translator.target_tokenizer.get_config(),
    }


def _build_module(translator, options, files):
    """The SavedModel's root: the model's variables, the tokenizers, their
    files as assets, and the three signatures.

    Keras's `ExportArchive` saves the variables and resources its endpoints
    use, but not extra files; the tokenizer files must travel as
    `tf.saved_model.Asset`s, so the root is a plain `tf.Module` (holding the
    same `tf.Variable`s the endpoints read).
    """
    model = translator.model
    root = tf.Module()
    # Keras variables wrap `tf.Variable`s; the traced functions capture those.
    root.model_variables = [variable.value for variable in model.variables]
    root.source_tokenizer = _ServingTokenizer(
        translator.source_tokenizer, files, "source"
    )
    root.target_tokenizer = _ServingTokenizer(
        translator.target_tokenizer, files, "target"
    )
    graph = _TranslationGraph(
        model, root.source_tokenizer, root.target_tokenizer, **options
    )
    text = tf.TensorSpec([None], tf.string, name="text")
    root.translate = tf.function(
        lambda text: graph.translate(text, "greedy"),
        input_signature=[text],
        autograph=False,
    )
    root.translate_beam = tf.function(
        lambda text: graph.translate(text, "beam"),
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


class _ServingTokenizer(tf.Module):
    """A `SubwordTokenizer` inside the SavedModel: tokenize and detokenize
    as graph ops, with the same normalization and id clean-up.

    tensorflow-text's SentencePiece op takes the model as an attribute of
    the graph node (not as a tensor), so the graph carries its own copy; the
    tokenizer files also travel as assets (`assets/<side>.sentencepiece.model`
    and `assets/<side>.tokenizer.json`) for clients that call the `serve`
    signature and tokenize themselves.
    """

    def __init__(self, tokenizer, files, side):
        super().__init__(name=f"{side}_tokenizer")
        import tensorflow_text as tf_text

        self.config = tokenizer
        model_path = os.path.join(files, f"{side}.sentencepiece.model")
        with open(model_path, "wb") as f:
            f.write(tokenizer.proto)
        config_path = os.path.join(files, f"{side}.tokenizer.json")
        with open(config_path, "w", encoding="utf-8") as f:
            json.dump(tokenizer.get_config(), f, indent=2, sort_keys=True)
        self.model_file = tf.saved_model.Asset(model_path)
        self.config_file = tf.saved_model.Asset(config_path)
        # The op keeps its model in a resource named after the node that
        # makes it; in a loaded SavedModel two tokenizers with tensorflow-
        # text's default name share one resource (the first model made).
        self.tokenizer = tf_text.SentencepieceTokenizer(
            model=tokenizer.proto, out_type="int32", name=f"{side}_sentencepiece"
        )

    def tokenize(self, texts):
        return self.tokenizer.tokenize(self.config.normalize(texts))

    def detokenize(self, ids):
        from keras_stageshow.tokenizers.subword_tokenizer import visible_ids

        return self.tokenizer.detokenize(visible_ids(ids, self.config.vocabulary_size))


class _TranslationGraph:
    """The text signatures' computation, written with TF ops (it runs only
    under the TensorFlow backend, inside the exported functions)."""

    def __init__(
        self, model, source, target, num_beams, length_penalty,
        max_new_tokens, batch_size,
    ):
        self.model = model
        self.source = source
        self.target = target
        self.num_beams = num_beams
        self.length_penalty = length_penalty
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size

    def translate(self, texts, strategy):
        texts = tf.ensure_shape(texts, [None])
        count = tf.size(texts)
        blank = tf.strings.regex_full_match(texts, BLANK_PATTERN)
        todo = tf.reshape(tf.where(~blank), [-1])
        # Source ids as `Translator.encode` makes them: cut to
        # max_length - 1 subwords, then the end token. (rows, width)
        ids = self.source.tokenize(tf.gather(texts, todo))
        ids = ids[:, : self.model.max_length - 1]
        end = self.source.config.end_id
        ids = tf.concat([ids, tf.fill([ids.nrows(), 1], end)], axis=1)
        lengths = tf.cast(ids.row_lengths(), tf.int32)
        source_ids = ids.to_tensor()
        # Longest first, in chunks of `batch_size`, as `Translator` does.
        order = tf.argsort(-lengths, stable=True)
        rows = tf.size(order)
        chunks = (rows + self.batch_size - 1) // self.batch_size

        def body(chunk, translations, scores):
            chosen = order[chunk * self.batch_size : (chunk + 1) * self.batch_size]
            chosen_lengths = tf.gather(lengths, chosen)
            width = tf.reduce_max(chosen_lengths)
            chosen_ids = tf.gather(source_ids, chosen)[:, :width]
            tokens, chunk_scores = self._generate(
                chosen_ids, chosen_lengths, strategy
            )
            words = self.target.detokenize(tokens)
            return (
                chunk + 1,
                tf.concat([translations, words], 0),
                tf.concat([scores, chunk_scores], 0),
            )

        _, translations, scores = tf.while_loop(
            lambda chunk, *_: chunk < chunks,
            body,
            (tf.constant(0), tf.constant([], tf.string), tf.constant([], tf.float32)),
            shape_invariants=(
                tf.TensorShape([]), tf.TensorShape([None]), tf.TensorShape([None])
            ),
            # One chunk at a time: memory stays that of `batch_size` rows.
            parallel_iterations=1,
        )
        # Back to the input's order; blank strings get "" and score 0
        # (the extra last entry).
        inverse = tf.argsort(order)
        translations = tf.concat([tf.gather(translations, inverse), [""]], 0)
        scores = tf.concat([tf.gather(scores, inverse), [0.0]], 0)
        position = tf.cumsum(tf.cast(~blank, tf.int32)) - 1
        position = tf.where(blank, rows, position)
        translations = tf.gather(translations, position)
        scores = tf.gather(scores, position)
        return {
            "translation": tf.ensure_shape(translations, [None]),
            "score": tf.reshape(scores, [count]),
        }

    def _generate(self, source_ids, lengths, strategy):
        """`Transformer.generate` on one chunk, in the same shape buckets
        (see `Transformer._compiled_generate`): batch rounded up to a power
        of two, source length and steps to a multiple of 16."""
        from keras_stageshow.models.transformer import _round_up

        model = self.model
        batch = tf.shape(source_ids)[0]
        source_len = tf.shape(source_ids)[1]
        if self.max_new_tokens is None:
            limits = tf.minimum(lengths + 50, model.max_length)
        else:
            limits = tf.fill([batch], self.max_new_tokens)
        steps = tf.reduce_max(limits)
        powers = tf.bitwise.left_shift(1, tf.range(31))
        batch_bucket = tf.reduce_min(tf.boolean_mask(powers, powers >= batch))
        # (Transformer's `_round_up` works on tensors as on ints.)
        length_bucket = tf.minimum(_round_up(source_len, 16), model.max_length)
        steps_bucket = tf.minimum(_round_up(steps, 16), model.max_length)
        padded = tf.pad(
            source_ids,
            [[0, batch_bucket - batch], [0, length_bucket - source_len]],
        )
        padded_limits = tf.pad(limits, [[0, batch_bucket - batch]])
        options = {"strategy": strategy}
        if strategy == "beam":
            options.update(
                num_beams=self.num_beams, length_penalty=self.length_penalty
            )
        tokens, scores = model._decode(
            padded,
            padded_limits,
            steps=steps_bucket,
            start_id=self.target.config.start_id,
            end_id=self.target.config.end_id,
            **options,
        )
        return tokens[:batch, :steps], scores[:batch]


def read_export_description(version_dir):
    """The `assets.extra/stageshow.json` an export wrote, as a dict."""
    path = os.path.join(version_dir, "assets.extra", "stageshow.json")
    with open(path, encoding="utf-8") as f:
        return json.load(f)
