"""The command line: demo (the main job), train, translate, evaluate."""

import json
import os
import subprocess
import sys

import pytest

import keras_stageshow as ks
from keras_stageshow.datasets import load_multi30k

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def stageshow(*args, stdin=None, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "keras_stageshow", *map(str, args)],
        capture_output=True, text=True, timeout=timeout, env=ENV, input=stdin,
    )


def last_json(result):
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_demo_trains_prints_and_saves_a_run(tmp_path):
    out = tmp_path / "demo"
    result = stageshow("demo", "--examples", 400, "--epochs", 1, "--out", out)
    assert "predicted:" in result.stdout and "expected:" in result.stdout, result.stderr[-2000:]
    summary = last_json(
        subprocess.CompletedProcess(
            result.args, result.returncode, result.stdout.split("\nTranslate more")[0],
            result.stderr,
        )
    )
    assert summary["parameters"] > 0 and summary["epochs"] == 1
    assert 0.0 <= summary["held_out_exact_match_greedy"] <= 1.0
    names = sorted(os.listdir(out))
    assert names == [
        "history.csv", "logs", "model.keras", "run.json", "source_tokenizer",
        "summary.json", "target_tokenizer",
    ]  # no backup left, no temporary file
    translator = ks.Translator.load(out)
    assert isinstance(translator.model, ks.Transformer)
    result = stageshow(
        "translate", "--model", out, "--plot-attention", tmp_path / "att.png",
        "ein hundo siehta", "",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(result.stdout.split("\n")) == 3  # two lines, the second empty
    # One picture per sentence that is not blank.
    assert (tmp_path / "att-1.png").read_bytes()[:4] == b"\x89PNG"
    assert not (tmp_path / "att-2.png").exists()


def test_demo_rejects_too_few_examples(tmp_path):
    result = stageshow("demo", "--examples", 10, "--out", tmp_path)
    assert result.returncode != 0 and "--examples" in result.stderr


@pytest.fixture(scope="module")
def multi30k_run(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("runs") / "m30k"
    result = stageshow(
        "train", "--data-dir", data_dir, "--max-examples", 400, "--epochs", 2,
        "--num-layers", 1, "--d-model", 32, "--num-heads", 2, "--d-ff", 64,
        "--vocabulary-size", 400, "--tokens-per-batch", 512, "--quiet",
        "--out", out,
    )
    return out, last_json(result)


def test_train_writes_a_complete_run(multi30k_run):
    out, summary = multi30k_run
    assert summary["epochs_done"] == 2 and summary["best_epoch"] in (1, 2)
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "complete"
    assert run["train_data"]["sentences"] == 400
    assert (out / "history.csv").read_text().count("\n") == 3
    assert any((out / "logs").rglob("events.out.tfevents*"))
    assert not (out / "backup").exists()


def test_train_again_on_a_finished_run_keeps_it(multi30k_run, data_dir):
    out, summary = multi30k_run
    before = (out / "model.keras").stat().st_mtime_ns
    result = stageshow(
        "train", "--data-dir", data_dir, "--max-examples", 400, "--epochs", 2,
        "--num-layers", 1, "--d-model", 32, "--num-heads", 2, "--d-ff", 64,
        "--vocabulary-size", 400, "--tokens-per-batch", 512, "--quiet",
        "--out", out,
    )
    assert last_json(result)["epochs_done"] == 2
    assert (out / "model.keras").stat().st_mtime_ns == before
    changed = stageshow(
        "train", "--data-dir", data_dir, "--max-examples", 400, "--d-model", 64,
        "--out", out,
    )
    assert changed.returncode != 0 and "d_model" in changed.stderr


def test_translate_reads_stdin_and_evaluate_prints_bleu(multi30k_run, data_dir, tmp_path):
    out, _ = multi30k_run
    result = stageshow("translate", "--model", out, stdin="Ein Hund.\nZwei Männer.\n")
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(result.stdout.splitlines()) == 2
    de, en = load_multi30k("val", data_dir=data_dir)
    (tmp_path / "src.de").write_text("\n".join(de[:40]) + "\n", encoding="utf-8")
    (tmp_path / "ref.en").write_text("\n".join(en[:40]) + "\n", encoding="utf-8")
    hyps = tmp_path / "hyps.txt"
    scores = last_json(
        stageshow(
            "evaluate", "--model", out, "--source-file", tmp_path / "src.de",
            "--reference-file", tmp_path / "ref.en", "--strategy", "beam",
            "--num-beams", 2, "--output", hyps,
        )
    )
    assert scores["sentences"] == 40 and scores["strategy"] == "beam"
    assert 0 <= scores["sacrebleu"] <= 100 and 0 <= scores["bleu_lowercased_tokenized"] <= 100
    assert len(hyps.read_text().splitlines()) == 40


def test_translate_on_a_folder_that_is_not_a_run(tmp_path):
    result = stageshow("translate", "--model", tmp_path, "Hallo")
    assert result.returncode != 0 and "not a training run" in result.stderr
