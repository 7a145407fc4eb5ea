"""Which pairs a run trains and validates on, and which a model is scored
on: Multi30k's own splits, or the user's files, whose last share is held
out for validation. `stageshow train` and `evaluate` call these."""

from keras_stageshow.datasets.multi30k import load_multi30k
from keras_stageshow.datasets.parallel_files import load_parallel_files
from keras_stageshow.datasets.parallel_files import load_tsv


class TooFewPairs(ValueError):
    """The user's files have too few pairs to hold some out for validation."""


def hold_out(source, target, fraction):
    """`(train_pairs, val_pairs)`: the last `fraction` of the aligned lists
    `source` and `target` (at least one pair) held out for validation, the
    rest for training. Raises `TooFewPairs` when nothing would be left to
    train on."""
    held_out = max(1, int(len(source) * fraction))
    if held_out >= len(source):
        raise TooFewPairs(
            f"{len(source)} pairs are too few to hold some out for validation."
        )
    train = (source[:-held_out], target[:-held_out])
    val = (source[-held_out:], target[-held_out:])
    return train, val


def load_training_pairs(
    tsv=None,
    source_file=None,
    target_file=None,
    valid_fraction=0.05,
    source_lang="de",
    target_lang="en",
    data_dir=None,
    max_examples=None,
):
    """`(train_pairs, val_pairs, description)` for a training run.

    With `tsv` (one file of `source<TAB>target` lines) or `source_file` and
    `target_file` (two aligned files), the last `valid_fraction` of the
    pairs is held out for validation (`hold_out`). Without them, Multi30k's
    `train` and `val` splits in the languages `source_lang` ->
    `target_lang` (read from `data_dir`, else downloaded once). With
    `max_examples`, only the first that many training pairs are kept.
    `description` says which, for `run.json`.

    Example:
    >>> train, val, description = load_training_pairs(tsv="pairs.tsv")
    """
    if tsv or source_file or target_file:
        if tsv:
            source, target = load_tsv(tsv)
            description = f"tsv {tsv}"
        elif source_file and target_file:
            source, target = load_parallel_files(source_file, target_file)
            description = f"files {source_file} {target_file}"
        else:
            raise ValueError(
                "Pass both `source_file` and `target_file`, or one `tsv`."
            )
        train, val = hold_out(source, target, valid_fraction)
    else:
        pair = dict(source=source_lang, target=target_lang)
        train = load_multi30k("train", data_dir=data_dir, **pair)
        val = load_multi30k("val", data_dir=data_dir, **pair)
        description = f"multi30k {source_lang}-{target_lang}"
    if max_examples:
        train = (train[0][:max_examples], train[1][:max_examples])
        description += f" (first {max_examples} pairs)"
    return train, val, description


def load_test_pairs(
    source_file=None,
    reference_file=None,
    split="test_2016_flickr",
    source_lang="de",
    target_lang="en",
    data_dir=None,
):
    """`(sources, references, description)` to score a model on: the
    aligned files `source_file` and `reference_file`, or else Multi30k's
    `split` in the languages `source_lang` -> `target_lang`."""
    if source_file or reference_file:
        if not (source_file and reference_file):
            raise ValueError("Pass both `source_file` and `reference_file`.")
        sources, references = load_parallel_files(source_file, reference_file)
        return sources, references, f"{source_file} / {reference_file}"
    sources, references = load_multi30k(
        split, source_lang, target_lang, data_dir=data_dir
    )
    return sources, references, f"multi30k {split}"
