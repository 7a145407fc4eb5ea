"""Text from outside the library as valid UTF-8: a bad byte never fails a job.

Sentences arrive as Python `str` or `bytes` (the API), as lines of files and
of stdin (the command line), and as string tensors (the exported SavedModel's
requests). An invalid UTF-8 byte in one of them must not fail the others, so
every entry point turns it into U+FFFD (the replacement character) with the
helpers below, and the command line says which lines had one:

- `decode_utf8`: one Python value (`bytes`, or a `str` holding undecodable
  bytes as lone surrogates, as Python's stdin and `sys.argv` do under a C
  locale) -> `str`;
- `decode_lines`: lines read as bytes -> `str`s, with a warning (logger
  `keras_stageshow.utf8`) naming the lines that had invalid bytes;
- `valid_utf8`: a string tensor -> the same strings with invalid bytes
  replaced, as TensorFlow ops (what `AwardsCeremony.translate` runs first,
  eagerly in the library and inside the exported graph).

The two decoders agree byte for byte: Python's `errors="replace"` and
TensorFlow's `unicode_transcode(errors="replace")` both replace each maximal
invalid subsequence with one U+FFFD (the Unicode standard's recommended
practice), which `tests/test_errors.py` checks on random bytes.
"""

import logging

REPLACEMENT_CHARACTER = 0xFFFD
# Line numbers named in a warning at most (the count is always given).
_LINES_NAMED = 10

logger = logging.getLogger(__name__)


def decode_utf8(text):
    """`text` as a `str`, with invalid UTF-8 replaced by U+FFFD.

    Args:
        text: `bytes` (decoded as UTF-8), or `str`. A `str` with lone
            surrogates (what Python's `surrogateescape` makes of
            undecodable bytes) gets its bytes back first and is decoded the
            same way; any other `str` is returned as it is.

    Example:
    >>> decode_utf8(b"caf\\xc3\\xa9 \\xff")
    'café \\ufffd'
    """
    if isinstance(text, (bytes, bytearray, memoryview)):
        return bytes(text).decode("utf-8", errors="replace")
    if not isinstance(text, str):
        raise TypeError(
            f"Expected a string or bytes; received {type(text).__name__}."
        )
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        data = text.encode("utf-8", errors="surrogateescape")
    except UnicodeEncodeError:  # surrogates that are not escaped bytes
        data = text.encode("utf-8", errors="surrogatepass")
    return data.decode("utf-8", errors="replace")


def decode_lines(lines, where):
    """Lines read as bytes -> `str`s without their line endings; invalid
    UTF-8 becomes U+FFFD and a warning names the lines that had it.

    Args:
        lines: an iterable of `bytes` (e.g. a file opened in `"rb"` mode, or
            `sys.stdin.buffer`).
        where: what the lines are, for the warning (a path, `"stdin"`).

    Example:
    >>> with open("train.de", "rb") as f:
    ...     sentences = decode_lines(f, "train.de")
    """
    texts, bad = [], []
    for number, line in enumerate(lines, start=1):
        line = line.rstrip(b"\r\n")
        try:
            texts.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            texts.append(decode_utf8(line))
            bad.append(number)
    if bad:
        named = ", ".join(map(str, bad[:_LINES_NAMED]))
        more = f" and {len(bad) - _LINES_NAMED} more" if len(bad) > _LINES_NAMED else ""
        logger.warning(
            "%s: invalid UTF-8 bytes in %d line(s) (line %s%s), replaced by "
            "U+FFFD; the lines were kept.",
            where, len(bad), named, more,
        )
    return texts


def valid_utf8(texts):
    """A string tensor with invalid UTF-8 in each string replaced by U+FFFD
    (TensorFlow ops: eager, or inside a graph). Valid strings come back
    unchanged, byte for byte."""
    import tensorflow as tf

    return tf.strings.unicode_transcode(
        texts, "UTF-8", "UTF-8", errors="replace",
        replacement_char=REPLACEMENT_CHARACTER,
    )
