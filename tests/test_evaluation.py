"""Scoring a translator (`evaluation.py`): what `stageshow evaluate` prints."""

import pytest

from keras_stageshow.evaluation import evaluate_translator
from keras_stageshow.evaluation import timed_translate

REFERENCES = ["a dog runs .", "two men sit on a bench .", "a red ball ."]


class EchoTranslator:
    """Translates each sentence to its reference (or to "" when asked to
    be wrong), recording the options it was called with."""

    def __init__(self, wrong=False):
        self.wrong = wrong
        self.calls = []

    def translate(self, texts, **options):
        self.calls.append(options)
        return ["" if self.wrong else REFERENCES[int(t)] for t in texts]


def test_timed_translate_returns_translations_and_seconds():
    translations, seconds = timed_translate(EchoTranslator(), ["0", "2"], batch_size=8)
    assert translations == [REFERENCES[0], REFERENCES[2]] and seconds >= 0


def test_evaluate_translator_scores_times_and_writes(tmp_path):
    translator = EchoTranslator()
    output = tmp_path / "out" / "hyps.txt"
    scores = evaluate_translator(
        translator, ["0", "1", "2"], REFERENCES, data="three sentences",
        output=str(output), strategy="beam", num_beams=2,
    )
    assert translator.calls == [{"strategy": "beam", "num_beams": 2}]
    assert scores["sacrebleu"] == pytest.approx(100.0)
    assert scores["sentences"] == 3 and scores["data"] == "three sentences"
    assert scores["strategy"] == "beam" and scores["translate_seconds"] >= 0
    assert list(scores)[-3:] == ["data", "strategy", "translate_seconds"]
    assert output.read_text(encoding="utf-8") == "\n".join(REFERENCES) + "\n"
    assert [p.name for p in output.parent.iterdir()] == ["hyps.txt"]


def test_evaluate_translator_defaults_to_greedy_and_writes_nothing(tmp_path):
    scores = evaluate_translator(EchoTranslator(wrong=True), ["0", "1", "2"], REFERENCES)
    assert scores["strategy"] == "greedy" and scores["data"] == ""
    assert scores["sacrebleu"] == 0.0
    assert not list(tmp_path.iterdir())
