"""Text in, text out: the Translator and RUN_DIR loading."""

import numpy as np
import pytest

from conftest import stage_translator
from keras_stageshow import SubwordTokenizer
from keras_stageshow import Translator

pytestmark = pytest.mark.tf_only  # the tokenizers


@pytest.fixture(scope="module")
def translator():
    return stage_translator()


def test_translate_keeps_order_and_handles_empty_strings(translator):
    texts = ["ein hundo siehta", "", "de katzo klein im de parko de ballo magta", "   "]
    out, scores = translator.translate(texts, return_scores=True)
    assert len(out) == 4 and all(isinstance(t, str) for t in out)
    assert out[1] == "" and out[3] == "" and scores[1] == 0.0
    # Each sentence translates as it would alone, whatever the batching.
    for text, translation in zip(texts, out):
        assert translator.translate(text) == translation
    assert translator.translate(texts, batch_size=1) == out


def test_translate_beam_and_sample(translator):
    texts = ["ein hundo siehta", "de vogo alt de bucho tragta"]
    beam = translator.translate(texts, strategy="beam", num_beams=3)
    sampled = translator.translate(texts, strategy="sample", top_k=5, seed=2)
    assert len(beam) == len(sampled) == 2
    assert translator.translate(texts, strategy="sample", top_k=5, seed=2) == sampled


def test_long_input_is_cut_to_max_length(translator):
    ids = translator.encode(["ein hundo " * 100])
    assert ids.shape[1] == translator.model.max_length
    assert ids[0, -1] == translator.source_tokenizer.end_id
    assert isinstance(translator.translate(["ein hundo " * 100])[0], str)


def test_save_and_load_translate_identically(translator, tmp_path):
    texts = ["ein hundo siehta", "de katzo magta"]
    translator.save(tmp_path / "run")
    loaded = Translator.load(tmp_path / "run")
    assert loaded.translate(texts) == translator.translate(texts)


def test_bad_inputs_have_clear_errors(translator, tmp_path):
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        translator.translate(["ok", 3])
    with pytest.raises(TypeError, match="list of strings"):
        translator.translate(np.array(["a"]))
    with pytest.raises(ValueError, match="batch_size"):
        translator.translate(["a"], batch_size=0)
    other = SubwordTokenizer.train(["a b c d e f g"] * 5, vocabulary_size=20)
    with pytest.raises(ValueError, match="source_tokenizer"):
        Translator(translator.model, other, translator.target_tokenizer)
    with pytest.raises(FileNotFoundError, match="not a training run"):
        Translator.load(tmp_path)
    translator.save(tmp_path / "run")
    (tmp_path / "run" / "model.keras").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a .keras archive"):
        Translator.load(tmp_path / "run")


def test_a_saved_run_holds_no_code_and_loading_runs_none(translator, tmp_path):
    import zipfile

    import keras

    if not translator.model.built:
        translator.model.build(((None, None), (None, None)))
    translator.save(tmp_path / "run")
    with zipfile.ZipFile(tmp_path / "run" / "model.keras") as archive:
        # JSON config and HDF5 weights only: nothing pickled.
        assert sorted(archive.namelist()) == [
            "config.json", "metadata.json", "model.weights.h5"
        ]
    for side in ("source_tokenizer", "target_tokenizer"):
        assert sorted(p.name for p in (tmp_path / "run" / side).iterdir()) == [
            "sentencepiece.model", "tokenizer.json"
        ]
    # A model.keras carrying Python code (a Lambda layer's bytecode) is
    # refused by safe mode instead of being run.
    code = keras.Sequential([keras.Input((1,)), keras.layers.Lambda(lambda x: x * 2.0)])
    code.save(tmp_path / "run" / "model.keras")
    with pytest.raises(ValueError, match="could not be loaded.*safe_mode"):
        Translator.load(tmp_path / "run")
