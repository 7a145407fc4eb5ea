"""Text and ids around the script (`SubwordTokenizer`): normalization,
the ids a reader sees, the reserved-id check of a SentencePiece model, and
checking the texts a tokenizer is given. TensorFlow ops where the result
must also run in a graph (`tf.data`, the SavedModel export)."""

import numpy as np

from keras_stageshow.special_ids import END_ID
from keras_stageshow.utf8 import decode_utf8
from keras_stageshow.utf8 import valid_utf8

# The first four pieces of every vocabulary the library builds (ids 0-3).
RESERVED_PIECES = ("<pad>", "<unk>", "<s>", "</s>")


def _tf():
    import tensorflow as tf

    return tf


def _tf_text():
    import tensorflow_text

    return tensorflow_text


def visible_ids(ids, vocabulary_size):
    """The ids a reader sees, from ids `(batch, len)` (dense 0-padded or
    ragged), as a ragged tensor: the tokens
    before the first end token, without padding, unknown or start tokens.
    (Also used by the exported SavedModel's graph.)"""
    tf = _tf()
    ids = tf.cast(ids, "int32")
    before_end = tf.math.cumsum(tf.cast(ids == END_ID, "int32"), axis=-1) == 0
    ids = tf.ragged.boolean_mask(ids, before_end & (ids > END_ID))
    return tf.clip_by_value(ids, 0, vocabulary_size - 1)


def check_reserved(proto, where):
    """The pieces of a SentencePiece model, after checking its reserved ids."""
    import sentencepiece

    processor = sentencepiece.SentencePieceProcessor()
    try:
        processor.LoadFromSerializedProto(proto)
    except Exception as error:  # sentencepiece raises RuntimeError/OSError
        raise ValueError(
            f"{where}: not a valid SentencePiece model ({error}). Train one "
            "with `SubwordTokenizer.train`."
        ) from None
    pieces = [processor.IdToPiece(i) for i in range(processor.GetPieceSize())]
    if tuple(pieces[:4]) != RESERVED_PIECES:
        raise ValueError(
            f"{where}: the SentencePiece model lacks the reserved tokens "
            f"{list(RESERVED_PIECES)} at ids 0-3 (it has {pieces[:4]}). Train it "
            "with `SubwordTokenizer.train`, or with pad_id=0, unk_id=1, "
            "bos_id=2, eos_id=3."
        )
    return pieces


def normalize_texts(texts, lowercase, strip_accents):
    tf = _tf()
    texts = check_texts(texts)
    if strip_accents:
        texts = _tf_text().normalize_utf8(texts, "NFD")
        texts = tf.strings.regex_replace(texts, r"\p{Mn}", "")
    if lowercase:
        texts = _tf_text().case_fold_utf8(texts)
    return texts


def check_texts(texts):
    # Strings, bytes and string tensors become valid UTF-8 (invalid bytes ->
    # U+FFFD): the `sentencepiece` library, eagerly, fails on invalid UTF-8.

    tf = _tf()
    if isinstance(texts, (str, bytes)):
        return tf.constant(decode_utf8(texts))
    if isinstance(texts, (list, tuple, np.ndarray)):
        bad = [t for t in texts if not isinstance(t, (str, bytes, np.str_))]
        if bad:
            raise TypeError(
                "`texts` must be strings; received an element of type "
                f"{type(bad[0]).__name__}."
            )
        return tf.constant([decode_utf8(t) for t in texts], dtype="string")
    texts = tf.convert_to_tensor(texts)
    if texts.dtype != tf.string:
        raise TypeError(
            f"`texts` must be strings; received a tensor of dtype {texts.dtype}."
        )
    return valid_utf8(texts)


def flatten_corpus(texts):
    if isinstance(texts, str):
        raise TypeError(
            "`texts` must be a list of sentences, not one string. Wrap it in "
            "a list."
        )
    texts = list(texts)
    if texts and isinstance(texts[0], (list, tuple)):
        return [s for part in texts for s in part]
    return texts


def as_strings(tensor):
    values = tensor.numpy()
    if isinstance(values, bytes):
        return values.decode("utf-8")
    return [v.decode("utf-8") for v in values.tolist()]
