"""The command line: demo (the main job), train, translate, evaluate."""

import argparse
import json
import logging
import os
import re
import subprocess
import sys

import pytest

import keras_stageshow as ks
from keras_stageshow import cli
from keras_stageshow import cli_flags
from keras_stageshow import cli_quiet
from keras_stageshow.datasets import load_multi30k

pytestmark = pytest.mark.tf_only  # training runs (tf.data) and the tokenizers

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
# As a user runs it: TensorFlow's log level not set.
USER_ENV = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
# TensorFlow's C++ log lines (absl format) and the chatter the command line
# keeps off stderr.
TF_CPP_LOG = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ (\S+:\d+)\]", re.M)
CHATTER = re.compile(r"absl::InitializeLog|oneDNN|cuInit|cudart|retracing")


def stageshow(*args, stdin=None, timeout=600, env=ENV):
    return subprocess.run(
        [sys.executable, "-m", "keras_stageshow", *map(str, args)],
        capture_output=True, text=isinstance(stdin, (str, type(None))),
        timeout=timeout, env=env, input=stdin,
    )


def assert_quiet(stderr):
    assert not TF_CPP_LOG.search(stderr) and not CHATTER.search(stderr), stderr


@pytest.fixture(autouse=True)
def _undo_in_process_main():
    """`cli.main` called in this process filters TensorFlow's logger and
    adds a handler to the library's; take both off after each test."""
    yield
    logging.getLogger("tensorflow").removeFilter(cli_quiet._drop_retracing_warning)
    library = logging.getLogger("keras_stageshow")
    for handler in list(library.handlers):
        if isinstance(handler, cli_quiet._CommandLineWarnings):
            library.removeHandler(handler)


def last_json(result):
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_demo_trains_prints_and_saves_a_run(tmp_path):
    out = tmp_path / "demo"
    result = stageshow(
        "demo", "--examples", 400, "--epochs", 1, "--out", out, env=USER_ENV
    )
    assert "predicted:" in result.stdout and "expected:" in result.stdout, result.stderr[-2000:]
    # No TensorFlow C++ lines, no retracing warning (the held-out sentences
    # are decoded in several shape buckets).
    assert_quiet(result.stderr)
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
        "--dtype-policy", "float32", "--average-last", 0, "--out", out,
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
    # Flags left out keep the run's saved values, not today's defaults
    # (which differ here: --d-model, --dtype-policy, --average-last...).
    bare = stageshow("train", "--data-dir", data_dir, "--max-examples", 400,
                     "--quiet", "--out", out)
    assert bare.returncode == 0, bare.stderr[-2000:]
    assert last_json(bare)["epochs_done"] == 2
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


# -- every numeric flag is range-checked by argparse ---------------------------

# For each checked type in cli_flags.py, values it must refuse.
INVALID = {
    cli_flags.positive_int: ["0", "-1", "1.5", "x"],
    cli_flags.non_negative_int: ["-1", "x"],
    cli_flags.positive_float: ["0", "-5", "nan", "inf"],
    cli_flags.non_negative_float: ["-1", "nan"],
    cli_flags.rate: ["1", "1.5", "-0.1", "nan"],
    cli_flags.rate_or_auto: ["1", "-0.1", "nan", "Auto", "x"],
    cli_flags.fraction: ["0", "1", "nan"],
    cli_flags.top_p: ["0", "1.5", "nan"],
    cli_flags.round_index: ["-2", "x"],
    cli_flags.demo_examples: ["99", "-1"],
}


def numeric_flags():
    """(command, the arguments it requires, the action) for every flag that
    takes a value through a `type=`, walking the parsers (argparse has no
    public API for that)."""
    parser = cli_flags.build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for command, subparser in commands.choices.items():
        required = []
        for action in subparser._actions:
            if action.required and action.option_strings:
                required += [action.option_strings[0], "x"]
        for action in subparser._actions:
            if action.type is not None:
                yield command, required, action


def test_every_numeric_flag_rejects_out_of_range_values(capsys):
    flags = list(numeric_flags())
    assert {c for c, _, _ in flags} == {"demo", "train", "translate", "evaluate", "export"}
    assert len(flags) > 30
    for command, required, action in flags:
        flag = action.option_strings[0]
        assert action.type in INVALID, (
            f"`stageshow {command} {flag}` has type={action.type!r}; use a "
            "checked type from cli_flags.py (positive_int, rate, ...) and list it "
            "in INVALID"
        )
        if action.default not in (None, argparse.SUPPRESS):  # the default passes
            action.type(str(action.default))
        for value in INVALID[action.type]:
            with pytest.raises(SystemExit) as stop:
                cli.main([command, *required, flag, value])
            error = capsys.readouterr().err
            assert stop.value.code == 2, (command, flag, value)
            assert f"argument {flag}: must be" in error and repr(value) in error, error


def test_dropout_rate_auto_typed_means_what_leaving_it_out_means():
    # --help shows "(default: auto)", so typing it must work, for a new run
    # and when resuming a run whose "auto" was already resolved.
    from keras_stageshow.training.recipe import new_run_settings
    from keras_stageshow.training.recipe import resumed_run_settings

    parser = cli_flags.build_parser()
    base = ["train", "--out", "r", "--time-limit-minutes", "45"]
    typed = parser.parse_args([*base, "--dropout-rate", "auto"])
    left_out = parser.parse_args(base)
    assert typed.dropout_rate == "auto" and not hasattr(left_out, "dropout_rate")
    assert parser.parse_args([*base, "--dropout-rate", "0.3"]).dropout_rate == 0.3
    given = {"time_limit_minutes": 45.0}
    new = new_run_settings({**given, "dropout_rate": "auto"})
    assert new == new_run_settings(given) and new["dropout_rate"] == "auto"
    saved = {**new, "dropout_rate": 0.2}
    assert resumed_run_settings(saved, {**given, "dropout_rate": "auto"}, "r") == (
        resumed_run_settings(saved, given, "r")
    )
    assert resumed_run_settings(saved, {"dropout_rate": "auto"}, "r")["dropout_rate"] == 0.2


def test_epochs_minus_one_stops_before_training(tmp_path):
    result = stageshow("train", "--out", tmp_path / "run", "--epochs", -1)
    assert result.returncode == 2
    assert "argument --epochs: must be an int >= 1; received '-1'" in result.stderr
    assert not (tmp_path / "run").exists()


# -- invalid UTF-8 never loses a job -------------------------------------------

BAD_STDIN = b"Ein Hund.\nEin \xff Hund.\n\nZwei M\xc3\xa4nner \xc3(.\n"


@pytest.fixture(scope="module")
def bad_stdin_translation(multi30k_run):
    """`stageshow translate` reading lines with invalid bytes from stdin,
    as a user runs it (TensorFlow's log level not set)."""
    out, _ = multi30k_run
    result = stageshow("translate", "--model", out, stdin=BAD_STDIN, env=USER_ENV)
    stdout, stderr = result.stdout.decode(), result.stderr.decode()
    assert result.returncode == 0, stderr[-3000:]
    return stdout, stderr


def test_translate_keeps_lines_with_invalid_utf8(bad_stdin_translation):
    stdout, stderr = bad_stdin_translation
    lines = stdout.split("\n")
    assert len(lines) == 5 and lines[2] == "" and lines[4] == ""  # 4 lines
    assert lines[1] and lines[3]
    assert (
        "stageshow translate: warning: stdin: invalid UTF-8 bytes in 2 line(s) "
        "(line 2, 4), replaced by U+FFFD; the lines were kept." in stderr
    )


def test_translate_stderr_has_no_tensorflow_chatter(bad_stdin_translation):
    _, stderr = bad_stdin_translation
    assert_quiet(stderr)
    assert stderr.strip().count("\n") == 0  # only the UTF-8 warning


def test_evaluate_keeps_lines_with_invalid_utf8(multi30k_run, data_dir, tmp_path):
    out, _ = multi30k_run
    de, en = load_multi30k("val", data_dir=data_dir)
    source = "\n".join(de[:20]).encode() + b"\n"
    source = source.replace(b"\n", b" \xfe\n", 3)  # lines 1 to 3
    (tmp_path / "src.de").write_bytes(source)
    (tmp_path / "ref.en").write_text("\n".join(en[:20]) + "\n", encoding="utf-8")
    result = stageshow(
        "evaluate", "--model", out, "--source-file", tmp_path / "src.de",
        "--reference-file", tmp_path / "ref.en",
    )
    assert last_json(result)["sentences"] == 20
    assert "src.de: invalid UTF-8 bytes in 3 line(s) (line 1, 2, 3)" in result.stderr


# -- a quiet command line --------------------------------------------------------


def test_a_user_set_tf_cpp_min_log_level_is_respected(tmp_path):
    env = {**USER_ENV, "TF_CPP_MIN_LOG_LEVEL": "0"}
    plain = subprocess.run(
        [sys.executable, "-c", "import tensorflow"], capture_output=True,
        text=True, timeout=300, env=env,
    )
    printed = set(TF_CPP_LOG.findall(plain.stderr))  # e.g. {"port.cc:153"}
    result = stageshow("translate", "--model", tmp_path, "Hallo", env=env)
    assert result.returncode == 2 and "not a training run" in result.stderr
    assert printed <= set(TF_CPP_LOG.findall(result.stderr)), result.stderr
    quiet = stageshow("translate", "--model", tmp_path, "Hallo", env=USER_ENV)
    assert quiet.returncode == 2 and "not a training run" in quiet.stderr
    assert_quiet(quiet.stderr)


def test_only_the_retracing_warning_is_dropped(caplog):
    import tensorflow as tf

    def retrace(function):
        for n in range(1, 8):  # a new shape each call
            function(tf.zeros([n]))

    with caplog.at_level("WARNING", logger="tensorflow"):
        retrace(tf.function(lambda x: x + 1))
        assert "triggered tf.function retracing" in caplog.text  # it would show
        caplog.clear()
        cli_quiet.quiet_tensorflow()  # what `main` does first
        retrace(tf.function(lambda x: x + 2))
        tf.get_logger().warning("a warning the user must see")
    assert "retracing" not in caplog.text
    assert "a warning the user must see" in caplog.text
