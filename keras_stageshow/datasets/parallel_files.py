"""Parallel text from the user's own files: two aligned files, or one TSV."""

import gzip
import os

from keras_stageshow.utf8 import decode_lines


def read_lines(path, name="path"):
    """Lines of a UTF-8 text file (gzipped when its name ends in `.gz`),
    without their line endings. Invalid UTF-8 bytes become U+FFFD, with a
    warning naming the lines (`keras_stageshow.utf8.decode_lines`): one bad
    byte does not lose the file."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"`{name}` must be a file path; received {type(path).__name__}."
        )
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"`{name}`: file {str(path)!r} does not exist. Check the path."
        )
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            lines = f.readlines()
    except (OSError, EOFError) as error:
        raise ValueError(
            f"`{name}`: {str(path)!r} is not readable ({error}). Pass a plain "
            "or gzipped UTF-8 text file, one sentence per line."
        ) from None
    if any(b"\0" in line for line in lines):
        raise ValueError(
            f"`{name}`: {str(path)!r} holds NUL bytes, so it is not a text "
            "file (a gzipped file whose name does not end in .gz?). Pass a "
            "plain or gzipped UTF-8 text file, one sentence per line."
        )
    return decode_lines(lines, str(path))


def load_parallel_files(source_path, target_path):
    """Reads two aligned files: line i of the target translates line i of
    the source. Returns `(source_texts, target_texts)`, two lists of str.

    Example:
    >>> de, en = load_parallel_files("train.de", "train.en")
    """
    source = read_lines(source_path, "source_path")
    target = read_lines(target_path, "target_path")
    if len(source) != len(target):
        raise ValueError(
            f"`source_path` has {len(source)} lines but `target_path` has "
            f"{len(target)}; parallel files must be aligned line by line."
        )
    return _non_empty(source, target, f"{source_path} / {target_path}")


def load_tsv(path, source_column=0, target_column=1):
    """Reads one tab-separated file of `source<TAB>target` lines (extra
    columns, as in Tatoeba/Anki exports, are ignored). Returns
    `(source_texts, target_texts)`."""
    source, target = [], []
    for number, line in enumerate(read_lines(path, "path"), start=1):
        if not line.strip():
            continue
        columns = line.split("\t")
        if len(columns) <= max(source_column, target_column):
            raise ValueError(
                f"`path` {str(path)!r}, line {number}: expected a tab between "
                f"source and target, found {len(columns)} column(s): "
                f"{line[:60]!r}."
            )
        source.append(columns[source_column].strip())
        target.append(columns[target_column].strip())
    return _non_empty(source, target, str(path))


def _non_empty(source, target, where):
    pairs = [(s, t) for s, t in zip(source, target) if s.strip() and t.strip()]
    if not pairs:
        raise ValueError(
            f"{where} holds no sentence pairs (the files are empty or every "
            "line is blank)."
        )
    return [s for s, _ in pairs], [t for _, t in pairs]
