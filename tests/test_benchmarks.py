"""Every benchmark's `--smoke` mode runs end to end and prints its JSON line.

Nothing else runs the scripts in `benchmarks/`, so a library change that
breaks one would go unseen until someone re-measures. Each test imports the
script (benchmarks/ on `sys.path`, as when it runs) and calls its
`main(argv)` with `--smoke` in this process, so TensorFlow loads once; the
line must parse and hold the benchmark's key fields. The smoke runs train
tiny models on 40 generated caption pairs (the `data_dir` fixture) or read the
committed RUN_DIR `fixtures/main_run`; their figures mean nothing.
"""

import importlib
import json
import os
import sys

import pytest

pytestmark = [pytest.mark.tf_only, pytest.mark.benchmark_smoke]  # tf.data, tokenizers, SavedModels, the profiler

BENCHMARKS = os.path.join(os.path.dirname(__file__), "..", "benchmarks")

# script -> (whether it reads --data-dir, the fields its line must hold).
# A script whose contenders need packages outside the project's dependencies
# lists them under NEEDS; its test skips when one is missing.
CASES = {
    "batch_shapes": (True, ("pairs", "results")),
    "dropout": (
        False, ("ms_per_step_forward_backward", "speedup_vs_keras", "fraction_dropped",
                "mean_of_ones"),
    ),
    "generation": (False, ("config", "batch_2")),
    "int8_export": (
        True, ("saved_model_mb", "latency_1_sentence_median_ms", "val_bleu",
               "identical_translations", "int8_over_float32", "decision"),
    ),
    "mixed_precision": (
        True, ("target_tokens_per_second", "speedup_vs_float32", "loss_after_2_steps_multi30k"),
    ),
    "multi30k": (
        True, ("epochs", "best_val_loss", "model", "averaging", "greedy_sacrebleu",
               "beam2_sacrebleu", "examples", "sacrebleu_signature"),
    ),
    "multi30k_curve": (True, ("points", "dtype_policy", "average_last")),
    "profile_decoding_step": (False, ("model_config", "by_length")),
    "profile_train_step": (
        False, ("dtype_policy", "matmul_gflops_by_shape", "matmul_peak_gflops",
                "keras_stageshow", "keras_hub", "tutorial"),
    ),
    "scaling": (True, ("by_length_at_batch_16", "by_batch_at_length_32", "memory")),
    "serving": (
        True, ("export_seconds", "latency_1_sentence_median_ms", "latency_speedup",
               "greedy_batch32_speedup", "beam_batch32_speedup", "identical_translations",
               "greedy_ms_per_sentence_by_new_tokens"),
    ),
    "train_throughput": (
        False, ("target_tokens_per_second", "dtype_policy", "speedup_vs_each_peer", "fused_adam_speedup",
                "fraction_of_matmul_peak"),
    ),
    "tune_multi30k": (
        True, ("settings", "epochs", "best_val_loss", "train_loss_by_epoch",
               "val_loss_by_epoch", "val_bleu"),
    ),
    "xla_training": (True, ("results", "epochs")),
}
NEEDS = {}
# Benchmarks whose smoke mode another test file runs (in a subprocess).
TESTED_ELSEWHERE = {
    "ctranslate2_yardstick": "test_ctranslate2_yardstick.py",
    "tf_serving_compat": "test_serving.py",
}


@pytest.fixture(scope="module", autouse=True)
def _benchmarks_importable():
    sys.path.insert(0, BENCHMARKS)
    yield
    sys.path.remove(BENCHMARKS)


def test_every_benchmark_has_a_smoke_test():
    scripts = {
        name[:-3] for name in os.listdir(BENCHMARKS)
        if name.endswith(".py") and name != "common.py"
    }
    assert scripts == set(CASES) | set(TESTED_ELSEWHERE)
    for script, test_file in TESTED_ELSEWHERE.items():
        with open(os.path.join(os.path.dirname(__file__), test_file)) as f:
            text = f.read()
        assert f"{script}.py" in text and "--smoke" in text, test_file


@pytest.mark.parametrize("script", sorted(CASES))
def test_smoke_run_prints_its_json_line(script, data_dir, capsys):
    for package in NEEDS.get(script, ()):
        pytest.importorskip(package, reason=f"benchmarks/{script}.py needs {package}")
    reads_data, fields = CASES[script]
    argv = ["--smoke", *(["--data-dir", data_dir] if reads_data else [])]
    status = importlib.import_module(script).main(argv)
    assert status in (None, 0)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert lines, f"benchmarks/{script}.py printed no JSON line"
    result = json.loads(lines[-1])
    assert result["smoke"] is True
    assert result["benchmark"]
    missing = [field for field in fields if field not in result]
    assert not missing, f"benchmarks/{script}.py's line lacks {missing}: {result}"


def test_the_recipe_size_is_the_model_stageshow_train_trains():
    """`--size recipe` (profile_train_step.py) profiles the default model,
    not a copy of its sizes that could drift from the recipe."""
    import argparse

    from common import RECIPE_SIZE
    from common import model_size

    from keras_stageshow.training.recipe import MODEL_SETTINGS
    from keras_stageshow.training.recipe import TOKENIZER_SETTINGS

    size, vocab = model_size(argparse.Namespace(smoke=False), RECIPE_SIZE)
    assert vocab == TOKENIZER_SETTINGS["vocabulary_size"]
    assert size == {
        name: MODEL_SETTINGS[name] for name in ("num_layers", "d_model", "num_heads", "d_ff")
    }
