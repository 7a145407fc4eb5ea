"""Multi30k and user-file loaders, and the length-batched tf.data pipeline.
The loaders read the generated captions in Multi30k's layout (`data_dir`,
tests/caption_corpus.py); one test reads the real files where they are."""

import gzip
import shutil

import numpy as np
import pytest

from caption_corpus import SPLIT_SIZES

from keras_stageshow import SubwordTokenizer
from keras_stageshow.datasets import load_multi30k
from keras_stageshow.datasets import load_parallel_files
from keras_stageshow.datasets import load_tsv
from keras_stageshow.datasets import make_translation_dataset
from keras_stageshow.datasets.synthetic import stage_language_pairs

pytestmark = pytest.mark.tf_only  # tf.data pipelines and the tokenizers


def test_multi30k_reads_the_real_files(multi30k_dir):
    de, en = load_multi30k("val", data_dir=multi30k_dir)
    assert len(de) == len(en) == 1014
    assert all(isinstance(s, str) and s for s in de[:10])
    test_de, _ = load_multi30k("test_2016_flickr", data_dir=multi30k_dir)
    assert len(test_de) == 1000


def test_multi30k_reads_a_local_folder(data_dir):
    de, en = load_multi30k("val", data_dir=data_dir)
    assert len(de) == len(en) == SPLIT_SIZES["val"]
    assert de[0] != en[0] and all(isinstance(s, str) and s for s in de + en)
    test_de, _ = load_multi30k("test_2016_flickr", data_dir=data_dir)
    assert len(test_de) == SPLIT_SIZES["test_2016_flickr"]


def test_multi30k_downloads_once_into_its_cache(data_dir, tmp_path):
    # A file:// origin stands in for the public repository (no network).
    origin = f"file://{data_dir}"
    cache = tmp_path / "cache"
    de, en = load_multi30k("val", origin=origin, cache_dir=str(cache))
    assert len(de) == SPLIT_SIZES["val"]
    cached = cache / "datasets" / "multi30k" / "val.de.gz"
    assert cached.is_file()
    # The second call reads the cache, even with the origin gone.
    de2, _ = load_multi30k("val", origin="file:///nowhere", cache_dir=str(cache))
    assert de2 == de


def test_multi30k_errors_name_the_argument(tmp_path):
    with pytest.raises(ValueError, match="split"):
        load_multi30k("dev", data_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="data_dir"):
        load_multi30k("val", data_dir=str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="val.de.gz"):
        load_multi30k("val", data_dir=str(tmp_path))
    with pytest.raises(OSError, match="data_dir"):
        load_multi30k("val", origin="file:///nowhere", cache_dir=str(tmp_path))


def test_parallel_files_plain_and_gzipped(tmp_path):
    (tmp_path / "a.de").write_text("eins\nzwei\n\ndrei\n", encoding="utf-8")
    with gzip.open(tmp_path / "a.en.gz", "wt", encoding="utf-8") as f:
        f.write("one\ntwo\n\nthree\n")
    source, target = load_parallel_files(tmp_path / "a.de", tmp_path / "a.en.gz")
    assert source == ["eins", "zwei", "drei"] and target == ["one", "two", "three"]
    (tmp_path / "b.en").write_text("one\n", encoding="utf-8")
    with pytest.raises(ValueError, match="aligned"):
        load_parallel_files(tmp_path / "a.de", tmp_path / "b.en")
    with pytest.raises(FileNotFoundError, match="target_path"):
        load_parallel_files(tmp_path / "a.de", tmp_path / "missing.en")


def test_tsv_loader(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("Hallo\tHello\tCC-BY\nTschüss\tBye\n\n", encoding="utf-8")
    assert load_tsv(path) == (["Hallo", "Tschüss"], ["Hello", "Bye"])
    path.write_text("no tab here\n", encoding="utf-8")
    with pytest.raises(ValueError, match="tab"):
        load_tsv(path)
    path.write_text("\n\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no sentence pairs"):
        load_tsv(path)


@pytest.fixture(scope="module")
def pairs_and_tokenizer():
    source, target = stage_language_pairs(600, seed=3)
    tok = SubwordTokenizer.train([source, target], vocabulary_size=120)
    return source, target, tok


def test_pipeline_batches_by_length_with_little_padding(pairs_and_tokenizer):
    source, target, tok = pairs_and_tokenizer
    ds, stats = make_translation_dataset(
        source, target, tok, tok, max_length=32, tokens_per_batch=256,
        return_stats=True,
    )
    assert stats["sentences"] == 600 and ds.cardinality() == stats["batches"]
    assert stats["source_padding"] < 0.1 and stats["target_padding"] < 0.15
    seen_source, seen = 0, 0
    for (src, tgt_in), tgt_out in ds:
        src, tgt_in, tgt_out = src.numpy(), tgt_in.numpy(), tgt_out.numpy()
        assert src.size <= 256 and tgt_in.size <= 256
        # Teacher forcing: target_in is target_out shifted right by start.
        assert np.all(tgt_in[:, 0] == tok.start_id)
        np.testing.assert_array_equal(tgt_in[:, 1:], tgt_out[:, :-1] * (tgt_in[:, 1:] != 0))
        # Each row ends with the end token on both sides.
        for row in src:
            assert row[row != 0][-1] == tok.end_id
        for row in tgt_out:
            assert row[row != 0][-1] == tok.end_id
        seen += len(src)
        seen_source += int((src != 0).sum())
    assert seen == 600 and seen_source == stats["source_tokens"]


def test_the_pipeline_is_not_autotuned_so_dropped_iterators_do_not_stall_fit(
    pairs_and_tokenizer,
):
    # `fit` drops an iterator at each epoch's end; deleting an autotuned one
    # waited on tf.data's autotuning thread for up to 50 s on two busy
    # cores (make_translation_dataset's comment). Every dataset it makes,
    # the epoch-keyed one included, has autotuning off.
    source, target, tok = pairs_and_tokenizer
    for options in (dict(), dict(epoch=0), dict(shuffle=False)):
        ds = make_translation_dataset(source, target, tok, tok, 32, 256, **options)
        assert ds.options().autotune.enabled is False


def test_pipeline_order_changes_every_epoch_but_is_seeded(pairs_and_tokenizer):
    source, target, tok = pairs_and_tokenizer

    def first_rows(ds):
        return [int(src[0, 0]) * 1000 + src.shape[0] for (src, _), _ in ds]

    ds = make_translation_dataset(source, target, tok, tok, 32, 256, seed=4)
    epoch1, epoch2 = first_rows(ds), first_rows(ds)
    assert epoch1 != epoch2 and sorted(epoch1) == sorted(epoch2)
    again = make_translation_dataset(source, target, tok, tok, 32, 256, seed=4)
    assert first_rows(again) == epoch1


def test_pipeline_cuts_long_sentences_to_max_length(pairs_and_tokenizer):
    source, target, tok = pairs_and_tokenizer
    long_source = [" ".join([s] * 6) for s in source[:20]]
    ds = make_translation_dataset(long_source, target[:20], tok, tok, 16, 64)
    for (src, tgt_in), tgt_out in ds:
        assert src.shape[1] <= 16 and tgt_in.shape[1] <= 16
    with pytest.raises(ValueError, match="tokens_per_batch"):
        make_translation_dataset(source, target, tok, tok, 32, 16)
    with pytest.raises(ValueError, match="aligned"):
        make_translation_dataset(source, target[:5], tok, tok, 32, 256)


def test_loader_copies_are_not_needed_for_a_gz_free_folder(data_dir, tmp_path):
    # Uncompressed files in a folder work too.
    for lang in ("de", "en"):
        with gzip.open(f"{data_dir}/val.{lang}.gz", "rb") as f, open(
            tmp_path / f"val.{lang}", "wb"
        ) as g:
            shutil.copyfileobj(f, g)
    de, en = load_multi30k("val", data_dir=str(tmp_path))
    assert len(de) == len(en) == SPLIT_SIZES["val"]


def test_epoch_keyed_order_is_fixed_per_epoch_and_skips_exactly():
    import tensorflow as tf

    from keras_stageshow.datasets import make_translation_dataset
    from keras_stageshow.datasets.synthetic import stage_language_pairs

    source, target = stage_language_pairs(300, seed=0)
    tok = SubwordTokenizer.train([source, target], vocabulary_size=80)

    def batches(**options):
        dataset = make_translation_dataset(
            source, target, tok, tok, max_length=40, tokens_per_batch=200, **options
        )
        return [tuple(s.numpy().ravel()[:8]) for (s, _), _ in dataset]

    epoch = tf.Variable(0, dtype="int64")
    first = batches(epoch=epoch)
    epoch.assign(1)
    second = batches(epoch=epoch)
    assert first != second and sorted(first) == sorted(second)
    # Read when iteration starts; the same as a fixed epoch number.
    assert batches(epoch=1) == second and batches(epoch=0) == first
    assert batches(epoch=1, skip_batches=3) == second[3:]
    with pytest.raises(ValueError, match="skip_batches"):
        batches(skip_batches=3)  # a new random order has no "first" batches
    with pytest.raises(ValueError, match="skip_batches"):
        batches(epoch=0, skip_batches=len(first))


def _batch_shapes_and_rows(ds):
    shapes, rows = set(), []
    for (src, tgt_in), tgt_out in ds:
        shapes.add((*src.shape, tgt_in.shape[1]))
        assert tgt_in.shape == tgt_out.shape
        rows += [tuple(r[r != 0]) for r in src.numpy() if (r != 0).any()]
    return shapes, rows


def test_bounded_shapes_keep_few_shapes_every_example_and_little_padding(data_dir):
    de, en = load_multi30k("val", data_dir=data_dir)
    tok = SubwordTokenizer.train([de, en], vocabulary_size=1000)
    free, free_stats = make_translation_dataset(
        de, en, tok, tok, max_length=64, tokens_per_batch=512, return_stats=True,
    )
    ds, stats = make_translation_dataset(
        de, en, tok, tok, max_length=64, tokens_per_batch=512, return_stats=True,
        bounded_shapes=True, max_shapes=8,
    )
    free_shapes, free_rows = _batch_shapes_and_rows(free)
    assert len(free_shapes) == free_stats["shapes"] > 8  # the problem
    for _ in range(2):  # two epochs, two orders, the same few shapes
        shapes, rows = _batch_shapes_and_rows(ds)
        assert len(shapes) == stats["shapes"] <= 8
        assert sorted(rows) == sorted(free_rows)  # each example once
        assert all(b * max(s, t) <= 512 for b, s, t in shapes)
    assert stats["source_padding"] < 0.25 and stats["target_padding"] < 0.25


def test_bounded_batches_reach_the_padding_goal_on_multi30k_lengths():
    from keras_stageshow.datasets.pipeline import bounded_batches
    from keras_stageshow.datasets.pipeline import padding_fraction

    source, target = _multi30k_like_lengths()
    batches, shapes = bounded_batches(source, target, 2048, max_shapes=16)
    assert len(set(shapes)) <= 16
    assert sorted(np.concatenate(batches)) == list(range(5000))
    for rows, (size, s, t) in zip(batches, shapes):
        assert len(rows) <= size and source[rows].max() <= s and target[rows].max() <= t
    pad_s = padding_fraction(source, batches, [(r, s) for r, s, _ in shapes])
    pad_t = padding_fraction(target, batches, [(r, t) for r, _, t in shapes])
    assert pad_s <= 0.10 and pad_t <= 0.10, (pad_s, pad_t)  # issue 14's goal
    with pytest.raises(ValueError, match="max_shapes"):
        bounded_batches(source, target, 2048, max_shapes=0)


def _multi30k_like_lengths():
    """Source/target lengths shaped like Multi30k's (means 16 and 15)."""
    rng = np.random.default_rng(0)
    source = np.clip(rng.gamma(6.0, 2.7, size=5000).astype(int) + 2, 2, 60)
    return source, np.clip(source + rng.integers(-3, 3, size=5000), 2, 60)


def test_refining_the_cells_pads_less_than_greedy_merging_alone(monkeypatch):
    from keras_stageshow.datasets import pipeline

    source, target = _multi30k_like_lengths()

    def padding(batches, shapes):
        return (
            pipeline.padding_fraction(source, batches, [(r, s) for r, s, _ in shapes]),
            pipeline.padding_fraction(target, batches, [(r, t) for r, _, t in shapes]),
        )

    refined = padding(*pipeline.bounded_batches(source, target, 2048, max_shapes=16))
    monkeypatch.setattr(pipeline, "_refine_cells", lambda pairs, counts, bounds: bounds)
    greedy = padding(*pipeline.bounded_batches(source, target, 2048, max_shapes=16))
    assert refined[0] < greedy[0] and refined[1] < greedy[1], (refined, greedy)
