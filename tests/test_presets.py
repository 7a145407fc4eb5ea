"""A trained translator shared as a keras-hub preset (local folders only)."""

import json
import os

import keras
import keras_hub
import numpy as np
import pytest

import keras_stageshow as ks
from conftest import random_ids
from conftest import tiny_transformer
from keras_stageshow.datasets.synthetic import stage_language_pairs

pytestmark = pytest.mark.tf_only  # Translator: the tokenizers

TEXTS = ["the crew rehearse the show", "a critic watches", ""]


@pytest.fixture(scope="module")
def two_vocabulary_translator():
    """Separate source and target vocabularies, one of them lowercasing, so
    that a preset that mixed up the two tokenizers would translate wrongly."""
    source, target = stage_language_pairs(300, seed=0)
    source_tok = ks.SubwordTokenizer.train(source, vocabulary_size=90, lowercase=True)
    target_tok = ks.SubwordTokenizer.train(target, vocabulary_size=70)
    keras.utils.set_random_seed(3)
    model = tiny_transformer(
        vocab=source_tok.vocabulary_size(),
        target_vocab=target_tok.vocabulary_size(),
        max_length=40,
    )
    return ks.Translator(model, source_tok, target_tok)


def test_preset_has_keras_hubs_layout(two_vocabulary_translator, tmp_path):
    preset = tmp_path / "preset"
    two_vocabulary_translator.save_to_preset(str(preset))
    names = {str(p.relative_to(preset)) for p in preset.rglob("*") if p.is_file()}
    assert names == {
        "config.json", "model.weights.h5", "metadata.json",
        "task.json", "preprocessor.json",
        "source_tokenizer.json", "target_tokenizer.json",
        os.path.join("assets", "source_tokenizer", "vocabulary.spm"),
        os.path.join("assets", "target_tokenizer", "vocabulary.spm"),
    }
    config = json.loads((preset / "config.json").read_text())
    assert config["registered_name"] == "keras_stageshow>Transformer"
    task = json.loads((preset / "task.json").read_text())
    assert task["registered_name"] == "keras_stageshow>Translator"
    preprocessor = json.loads((preset / "preprocessor.json").read_text())
    assert preprocessor["registered_name"] == "keras_stageshow>TranslatorPreprocessor"
    metadata = json.loads((preset / "metadata.json").read_text())
    assert metadata["parameter_count"] == two_vocabulary_translator.model.count_params()
    # No temporary or set-aside folder is left beside it.
    assert sorted(os.listdir(tmp_path)) == ["preset"]


def test_from_preset_translates_exactly_as_the_saved_translator(
    two_vocabulary_translator, tmp_path
):
    preset = str(tmp_path / "preset")
    two_vocabulary_translator.save_to_preset(preset)
    loaded = ks.Translator.from_preset(preset)
    assert loaded.source_tokenizer.lowercase and not loaded.target_tokenizer.lowercase
    assert loaded.source_tokenizer.proto == two_vocabulary_translator.source_tokenizer.proto
    assert loaded.target_tokenizer.proto == two_vocabulary_translator.target_tokenizer.proto
    for strategy in ("greedy", "beam"):
        assert loaded.translate(TEXTS, strategy=strategy) == (
            two_vocabulary_translator.translate(TEXTS, strategy=strategy)
        )
    source = random_ids(2, 7, vocab=90)
    target = random_ids(2, 5, vocab=70)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(loaded.model((source, target))),
        keras.ops.convert_to_numpy(two_vocabulary_translator.model((source, target))),
    )
    # `Translator.load` takes a preset folder as well as a RUN_DIR.
    assert ks.Translator.load(preset).translate(TEXTS) == loaded.translate(TEXTS)


def test_keras_hub_loads_the_pieces_by_their_own_classes(two_vocabulary_translator, tmp_path):
    preset = str(tmp_path / "preset")
    two_vocabulary_translator.save_to_preset(preset)
    backbone = keras_hub.models.Backbone.from_preset(preset)
    assert isinstance(backbone, ks.Transformer)
    tokenizer = keras_hub.tokenizers.Tokenizer.from_preset(
        preset, config_file="target_tokenizer.json"
    )
    assert isinstance(tokenizer, ks.SubwordTokenizer)
    assert tokenizer.get_vocabulary() == (
        two_vocabulary_translator.target_tokenizer.get_vocabulary()
    )


def test_saving_over_a_preset_replaces_it_whole(two_vocabulary_translator, tmp_path):
    preset = tmp_path / "preset"
    preset.mkdir()
    (preset / "stale.txt").write_text("from an older preset")
    two_vocabulary_translator.save_to_preset(str(preset))
    assert not (preset / "stale.txt").exists()
    assert sorted(os.listdir(tmp_path)) == ["preset"]


def test_a_failed_save_keeps_the_old_preset(two_vocabulary_translator, tmp_path, monkeypatch):
    preset = str(tmp_path / "preset")
    two_vocabulary_translator.save_to_preset(preset)
    before = open(os.path.join(preset, "model.weights.h5"), "rb").read()

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ks.SubwordTokenizer, "save_to_preset", fail)
    with pytest.raises(OSError, match="disk full"):
        two_vocabulary_translator.save_to_preset(preset)
    assert open(os.path.join(preset, "model.weights.h5"), "rb").read() == before
    assert sorted(os.listdir(tmp_path)) == ["preset"]


def test_a_run_dir_loads_through_from_preset(two_vocabulary_translator, tmp_path):
    run_dir = str(tmp_path / "run")
    two_vocabulary_translator.save(run_dir)
    loaded = ks.Translator.from_preset(run_dir)
    assert loaded.translate(TEXTS) == two_vocabulary_translator.translate(TEXTS)


def test_from_preset_errors_name_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ks.Translator.from_preset(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="save_to_preset"):
        ks.Translator.from_preset(str(tmp_path / "empty"))
    with pytest.raises(TypeError, match="preset"):
        ks.Translator.from_preset(3)


def test_a_never_called_translator_saves_a_loadable_run_and_preset(tmp_path):
    from conftest import stage_translator

    translator = stage_translator()  # untrained and never called
    translator.save(str(tmp_path / "run"))
    translator.save_to_preset(str(tmp_path / "preset"))
    for folder in ("run", "preset"):
        loaded = ks.Translator.load(str(tmp_path / folder))
        assert loaded.translate(TEXTS) == translator.translate(TEXTS)


def test_keras_hub_seq2seq_lm_from_preset_gives_the_translator_back(
    two_vocabulary_translator, tmp_path
):
    preset = str(tmp_path / "preset")
    two_vocabulary_translator.save_to_preset(preset)
    loaded = keras_hub.models.Seq2SeqLM.from_preset(preset)
    assert isinstance(loaded, ks.Translator)
    assert isinstance(loaded.preprocessor, ks.TranslatorPreprocessor)
    assert loaded.source_tokenizer.lowercase and not loaded.target_tokenizer.lowercase
    assert loaded.generate(TEXTS) == two_vocabulary_translator.translate(TEXTS)
    preprocessor = keras_hub.models.Seq2SeqLMPreprocessor.from_preset(preset)
    assert isinstance(preprocessor, ks.TranslatorPreprocessor)
    assert preprocessor.max_length == two_vocabulary_translator.model.max_length


PRESET_OF_EARLIER_VERSIONS = os.path.join(
    os.path.dirname(__file__), "fixtures", "main_preset"
)


def test_a_preset_saved_by_earlier_versions_loads_and_translates_as_its_run():
    """`fixtures/main_preset` is `fixtures/main_run` saved by
    `Translator.save_to_preset` at commit 319eace (no task.json)."""
    assert not os.path.exists(os.path.join(PRESET_OF_EARLIER_VERSIONS, "task.json"))
    run = os.path.join(os.path.dirname(__file__), "fixtures", "main_run")
    with open(os.path.join(run, "expected.json"), encoding="utf-8") as f:
        expected = json.load(f)
    loaded = ks.Translator.from_preset(PRESET_OF_EARLIER_VERSIONS)
    case = expected["greedy"]
    assert loaded.translate(expected["texts"], batch_size=8, **case["options"]) == (
        case["translations"]
    )
