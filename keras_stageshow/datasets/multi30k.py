"""Multi30k (task 1): image captions in English with German translations."""

import os

from keras_stageshow.datasets.parallel_files import read_lines

# The raw files of the public dataset repository (github.com/multi30k/dataset).
ORIGIN = "https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw"
SPLITS = ("train", "val", "test_2016_flickr", "test_2017_flickr", "test_2018_flickr")
LANGUAGES = ("de", "en", "fr", "cs")


def load_multi30k(
    split="train",
    source="de",
    target="en",
    data_dir=None,
    origin=ORIGIN,
    cache_dir=None,
):
    """Loads one split of Multi30k as `(source_texts, target_texts)`.

    With `data_dir`, the files `<split>.<lang>.gz` (or uncompressed
    `<split>.<lang>`) are read from that folder and nothing is downloaded.
    Without it, they are downloaded once from `origin` into Keras's cache
    (`~/.keras/datasets/multi30k`, or `$KERAS_HOME`).

    Args:
        split: `"train"`, `"val"` (for every tuning decision) or
            `"test_2016_flickr"` (the reported score), ...
        source, target: language codes (`"de"`, `"en"`, `"fr"`, `"cs"`).
        data_dir: optional local folder with the raw files.
        origin: base URL of the raw files.
        cache_dir: where downloads are kept (default: Keras's cache).

    Example:
    >>> de, en = load_multi30k("val", data_dir="../shared/data/multi30k")
    """
    if split not in SPLITS:
        raise ValueError(f"`split` must be one of {SPLITS}; received {split!r}.")
    for name, lang in (("source", source), ("target", target)):
        if lang not in LANGUAGES:
            raise ValueError(
                f"`{name}` must be one of {LANGUAGES}; received {lang!r}."
            )
    paths = [
        _local_file(data_dir, split, lang)
        if data_dir is not None
        else _download(origin, split, lang, cache_dir)
        for lang in (source, target)
    ]
    source_texts = read_lines(paths[0], "source file")
    target_texts = read_lines(paths[1], "target file")
    if len(source_texts) != len(target_texts):
        raise ValueError(
            f"Multi30k {split}: {paths[0]} has {len(source_texts)} lines but "
            f"{paths[1]} has {len(target_texts)}; the files are damaged. "
            "Delete them to download again."
        )
    return source_texts, target_texts


def _local_file(data_dir, split, lang):
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(
            f"`data_dir` {str(data_dir)!r} is not a folder. Pass the folder "
            "holding the Multi30k raw files (train.de.gz, ...), or leave it "
            "out to download them."
        )
    for name in (f"{split}.{lang}.gz", f"{split}.{lang}"):
        path = os.path.join(data_dir, name)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(
        f"`data_dir` {str(data_dir)!r} has no {split}.{lang}.gz (or "
        f"{split}.{lang}). Copy the raw Multi30k files there."
    )


def _download(origin, split, lang, cache_dir):
    import keras

    name = f"{split}.{lang}.gz"
    if cache_dir is not None:
        # Keras falls back to /tmp for a cache folder that does not exist yet.
        os.makedirs(cache_dir, exist_ok=True)
    try:
        return keras.utils.get_file(
            fname=name,
            origin=f"{origin.rstrip('/')}/{name}",
            cache_subdir=os.path.join("datasets", "multi30k"),
            cache_dir=cache_dir,
        )
    except Exception as error:
        raise OSError(
            f"Could not download Multi30k {name} from {origin} ({error}). "
            "Without internet, pass `data_dir=` (or `--data-dir`) with the "
            "raw files."
        ) from None
