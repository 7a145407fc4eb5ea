"""`TranslatorPreprocessor`: the script, written once (texts <-> token ids),
for `fit`, for `generate` and for the SavedModel export."""

import keras
import keras_hub

from keras_stageshow.models.transformer import Transformer
from keras_stageshow.special_ids import END_ID
from keras_stageshow.special_ids import START_ID
from keras_stageshow.tokenizers.subword_tokenizer import SubwordTokenizer

# The tokenizers' file names in a keras-hub preset (their `config_file`).
SOURCE_TOKENIZER_CONFIG = "source_tokenizer.json"
TARGET_TOKENIZER_CONFIG = "target_tokenizer.json"


@keras.saving.register_keras_serializable(package="keras_stageshow")
class TranslatorPreprocessor(keras_hub.models.Seq2SeqLMPreprocessor):
    """Ideas -> story -> script: texts to token ids and back (tokenization).

    The one owner of how a sentence becomes the ids the `Transformer` reads:
    the source is its subwords cut to `max_length - 1` plus the end token;
    the target is the start token, its subwords (cut to `max_length - 1`)
    and the end token, cut to `max_length + 1`, so that the decoder input
    (`target[:-1]`) and the labels (`target[1:]`) each have at most
    `max_length` ids. `fit`, `generate`, `translate`, the tf.data pipeline
    (`datasets/pipeline.py`) and the SavedModel's text signatures all call
    `encode_sources` / `encode_targets` / `detokenize`.

    A keras-hub `Seq2SeqLMPreprocessor` with two tokenizers, one per
    language: `tokenizer` (keras-hub's slot, read by `generate`'s stop
    token) is the target one. Inputs that are already token ids pass
    through unchanged, so `Translator.fit` also takes the length-batched
    datasets of `make_translation_dataset`.

    Args:
        source_tokenizer, target_tokenizer: `SubwordTokenizer`s (the same
            one twice for a shared vocabulary).
        max_length: int, the model's `max_length`: the longest source or
            target sequence of ids.
        **kwargs: `keras.layers.Layer` arguments (`name`, ...).

    Call arguments:
        x: source strings `(batch,)`, a dict `{"encoder_text": ...,
            "decoder_text": ...}` (keras-hub's keys), or already
            tokenized inputs (passed through).
        y: target strings `(batch,)` when `x` is the source strings.
        sample_weight: passed through.

    Returns `(x, y, sample_weight)` as `keras.utils.pack_x_y_sample_weight`
    packs them: `x = {"source_ids", "target_ids"}` (int32 `(batch, len)`,
    0-padded; `target_ids` is the shifted-right target) and `y` the
    labels `(batch, target_len)`.

    Example:
    >>> preprocessor = TranslatorPreprocessor(source_tok, target_tok, 128)
    >>> x, y = preprocessor(["Ein Hund rennt."], ["A dog runs."])
    >>> preprocessor.generate_postprocess(tokens)   # ids -> strings
    """

    backbone_cls = Transformer

    def __init__(self, source_tokenizer, target_tokenizer, max_length=512, **kwargs):
        for name, tokenizer in (
            ("source_tokenizer", source_tokenizer),
            ("target_tokenizer", target_tokenizer),
        ):
            if not isinstance(tokenizer, SubwordTokenizer):
                raise TypeError(
                    f"`{name}` must be a `SubwordTokenizer`; received "
                    f"{type(tokenizer).__name__}."
                )
        if not isinstance(max_length, int) or max_length < 2:
            raise ValueError(f"`max_length` must be an int >= 2; received {max_length!r}.")
        # Each side saves under its own file name in a preset, so a shared
        # vocabulary is held as two tokenizers with the same model.
        source_tokenizer = _with_config_file(source_tokenizer, SOURCE_TOKENIZER_CONFIG)
        target_tokenizer = _with_config_file(target_tokenizer, TARGET_TOKENIZER_CONFIG)
        for key in ("tokenizer", "encoder_sequence_length", "decoder_sequence_length"):
            kwargs.pop(key, None)  # written by keras-hub's `get_config`
        super().__init__(
            tokenizer=target_tokenizer,  # keras-hub's slot: the target side
            encoder_sequence_length=max_length,
            decoder_sequence_length=max_length,
            **kwargs,
        )
        self.source_tokenizer = source_tokenizer
        self.target_tokenizer = target_tokenizer
        self.max_length = max_length

    def build(self, input_shape):
        # No packers: the ids are packed by `encode_sources` /
        # `encode_targets`, ragged, and padded per batch.
        self.built = True

    def encode_sources(self, texts):
        """Texts -> `(source_ids, lengths)`: 0-padded int32 ids
        `(rows, longest)`, each row cut to `max_length - 1` subwords and
        ended with the end token, and each row's length `(rows,)`."""
        import tensorflow as tf

        ids = pack_sources(self.source_tokenizer.tokenize(texts), self.max_length)
        return ids.to_tensor(), tf.cast(ids.row_lengths(), "int32")

    def encode_targets(self, texts):
        """Texts -> ragged int32 `[start] + subwords + [end]`, cut to
        `max_length + 1` ids (see `pack_targets`)."""
        return pack_targets(self.target_tokenizer.tokenize(texts), self.max_length)

    def detokenize(self, token_ids):
        """Voted ids `(rows, steps)` -> strings `(rows,)`; padding, start,
        end and everything after the first end token are dropped."""
        return self.target_tokenizer.detokenize(token_ids)

    def call(self, x, y=None, sample_weight=None):
        import tensorflow as tf

        if isinstance(x, dict) and "encoder_text" in x:
            if y is not None:
                raise ValueError(
                    "Pass the targets as `x['decoder_text']` or as `y`, not both."
                )
            x, y = x["encoder_text"], x.get("decoder_text")
        if not _is_text(x):  # already token ids: the caller packed them
            return keras.utils.pack_x_y_sample_weight(x, y, sample_weight)
        if y is None:
            raise ValueError(
                "`TranslatorPreprocessor` needs target texts to train on: pass "
                "`(source_texts, target_texts)` pairs, or use "
                "`generate_preprocess` for source texts alone."
            )
        source_ids, _ = self.encode_sources(x)
        target = self.encode_targets(y).to_tensor()
        x = {"source_ids": source_ids, "target_ids": target[:, :-1]}
        return keras.utils.pack_x_y_sample_weight(x, target[:, 1:], sample_weight)

    def generate_preprocess(self, x, sequence_length=None):
        """Source texts -> `{"source_ids", "lengths"}` (see `encode_sources`)."""
        if isinstance(x, dict):
            x = x["encoder_text"]
        source_ids, lengths = self.encode_sources(x)
        return {"source_ids": source_ids, "lengths": lengths}

    def generate_postprocess(self, x):
        """Voted ids (or `{"token_ids": ...}`) -> strings."""
        if isinstance(x, dict):
            x = x["token_ids"]
        return self.detokenize(x)

    def get_config(self):
        config = super().get_config()
        for key in ("tokenizer", "encoder_sequence_length", "decoder_sequence_length"):
            config.pop(key, None)
        config.update(
            {
                "source_tokenizer": keras.layers.serialize(self.source_tokenizer),
                "target_tokenizer": keras.layers.serialize(self.target_tokenizer),
                "max_length": self.max_length,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("source_tokenizer", "target_tokenizer"):
            if isinstance(config.get(key), dict):
                config[key] = keras.layers.deserialize(config[key])
        return cls(**config)


def pack_sources(pieces, max_length):
    """Ragged subword ids -> ragged source ids: each row cut to
    `max_length - 1` subwords and ended with the end token."""
    import tensorflow as tf

    end = tf.fill([pieces.nrows(), 1], tf.constant(END_ID, pieces.dtype))
    return tf.concat([pieces[:, : max_length - 1], end], axis=1)


def pack_targets(pieces, max_length):
    """Ragged subword ids -> ragged `[start] + subwords + [end]`, cut to
    `max_length + 1` ids, so that the decoder input (`[:-1]`) and the labels
    (`[1:]`) have at most `max_length` each (a cut target loses its end
    token)."""
    import tensorflow as tf

    start = tf.fill([pieces.nrows(), 1], tf.constant(START_ID, pieces.dtype))
    end = tf.fill([pieces.nrows(), 1], tf.constant(END_ID, pieces.dtype))
    ids = tf.concat([start, pieces[:, : max_length - 1], end], axis=1)
    return ids[:, : max_length + 1]


def _is_text(x):
    import tensorflow as tf

    if isinstance(x, (str, bytes)):
        return True
    if isinstance(x, (list, tuple)):
        return bool(x) and isinstance(x[0], (str, bytes))
    if isinstance(x, (tf.Tensor, tf.RaggedTensor)):
        return x.dtype == tf.string
    return getattr(getattr(x, "dtype", None), "kind", None) in ("U", "S", "O")


def _with_config_file(tokenizer, config_file):
    """`tokenizer`, or a copy of it (same model) saved as `config_file`."""
    if tokenizer.config_file == config_file:
        return tokenizer
    return SubwordTokenizer(
        tokenizer.proto,
        lowercase=tokenizer.lowercase,
        strip_accents=tokenizer.strip_accents,
        config_file=config_file,
    )
