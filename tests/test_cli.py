"""The main job, `stageshow demo`, runs offline and saves a loadable run."""

import json
import os
import subprocess
import sys

import keras
import numpy as np

import keras_stageshow as ks


def test_demo_trains_prints_and_saves_a_loadable_model(tmp_path):
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "keras_stageshow", "demo",
         "--examples", "256", "--epochs", "1", "--out", str(out)],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "predicted:" in result.stdout and "expected:" in result.stdout
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["parameters"] > 0
    assert 0.0 <= summary["held_out_token_accuracy"] <= 1.0
    model = keras.saving.load_model(out / "model.keras", safe_mode=True)
    assert isinstance(model, ks.Transformer)
    # No temporary file is left behind by the atomic save.
    assert sorted(os.listdir(out)) == ["model.keras", "summary.json"]
    assert np.asarray(model.generate(np.array([[4, 6, 7, 8]]), max_new_tokens=5)).shape == (1, 5)


def test_demo_rejects_fewer_examples_than_a_batch(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "keras_stageshow", "demo", "--examples", "10",
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode != 0
    assert "--examples" in result.stderr
