"""Which pairs a run trains, validates and is scored on
(`datasets/splits.py`): Multi30k's splits, or the user's files with their
last share held out."""

import pytest

from keras_stageshow.datasets import load_multi30k
from keras_stageshow.datasets import load_test_pairs
from keras_stageshow.datasets import load_training_pairs
from keras_stageshow.datasets.splits import TooFewPairs
from keras_stageshow.datasets.splits import hold_out

SOURCE = [f"satz {i}" for i in range(40)]
TARGET = [f"sentence {i}" for i in range(40)]


def test_hold_out_keeps_the_last_share_for_validation():
    train, val = hold_out(SOURCE, TARGET, 0.1)
    assert train == (SOURCE[:36], TARGET[:36]) and val == (SOURCE[36:], TARGET[36:])
    # At least one pair is held out.
    train, val = hold_out(SOURCE, TARGET, 0.01)
    assert val == ([SOURCE[-1]], [TARGET[-1]]) and len(train[0]) == 39
    with pytest.raises(TooFewPairs, match="1 pairs are too few to hold some out"):
        hold_out(SOURCE[:1], TARGET[:1], 0.5)
    assert issubclass(TooFewPairs, ValueError)


def test_training_pairs_from_a_tsv_or_two_files(tmp_path):
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("".join(f"{s}\t{t}\n" for s, t in zip(SOURCE, TARGET)), encoding="utf-8")
    train, val, description = load_training_pairs(tsv=str(tsv), valid_fraction=0.25)
    assert train == (SOURCE[:30], TARGET[:30]) and val == (SOURCE[30:], TARGET[30:])
    assert description == f"tsv {tsv}"

    (tmp_path / "a.de").write_text("\n".join(SOURCE) + "\n", encoding="utf-8")
    (tmp_path / "a.en").write_text("\n".join(TARGET) + "\n", encoding="utf-8")
    files = dict(source_file=str(tmp_path / "a.de"), target_file=str(tmp_path / "a.en"))
    train, val, description = load_training_pairs(**files, max_examples=10)
    assert train == (SOURCE[:10], TARGET[:10])  # cut after the hold-out
    assert val == (SOURCE[-2:], TARGET[-2:])  # 5% of 40
    assert description == f"files {files['source_file']} {files['target_file']} (first 10 pairs)"
    with pytest.raises(ValueError, match="both `source_file` and `target_file`"):
        load_training_pairs(source_file=files["source_file"])


def test_training_and_test_pairs_from_multi30k(data_dir):
    train, val, description = load_training_pairs(data_dir=data_dir, max_examples=50)
    assert train == tuple(x[:50] for x in load_multi30k("train", data_dir=data_dir))
    assert val == load_multi30k("val", data_dir=data_dir)
    assert description == "multi30k de-en (first 50 pairs)"
    sources, references, description = load_test_pairs(
        split="val", source_lang="en", target_lang="de", data_dir=data_dir
    )
    assert (sources, references) == load_multi30k("val", "en", "de", data_dir=data_dir)
    assert description == "multi30k val"


def test_test_pairs_from_two_files(tmp_path):
    (tmp_path / "src").write_text("\n".join(SOURCE) + "\n", encoding="utf-8")
    (tmp_path / "ref").write_text("\n".join(TARGET) + "\n", encoding="utf-8")
    sources, references, description = load_test_pairs(
        source_file=str(tmp_path / "src"), reference_file=str(tmp_path / "ref")
    )
    assert (sources, references) == (SOURCE, TARGET)
    assert description == f"{tmp_path / 'src'} / {tmp_path / 'ref'}"
    with pytest.raises(ValueError, match="both `source_file` and `reference_file`"):
        load_test_pairs(reference_file=str(tmp_path / "ref"))
