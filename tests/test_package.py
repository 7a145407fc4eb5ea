"""The package imports cleanly and registers every public class."""

import json
import subprocess
import sys

import keras

import keras_stageshow as ks

PUBLIC = [
    "Preprocess", "Rehearsal", "Adjust", "CrewDiscussion", "PracticeRound",
    "StageShow", "AskQuestions", "WatchShow", "AssessmentDiscussion",
    "AssessmentRound", "OscarAssessment", "Voting", "Transformer",
    "TransformerSchedule", "MaskedSparseCategoricalCrossentropy",
    "MaskedAccuracy",
]


def test_every_public_class_is_registered_serializable():
    for name in PUBLIC:
        cls = getattr(ks, name)
        assert keras.saving.get_registered_name(cls) == f"keras_stageshow>{name}"
        assert keras.saving.get_registered_object(f"keras_stageshow>{name}") is cls


def test_import_changes_no_global_setting_and_stays_light():
    script = (
        "import json, sys, keras;"
        "before = (keras.config.dtype_policy().name, keras.config.floatx(),"
        " keras.config.image_data_format(), keras.config.backend());"
        "import keras_stageshow;"
        "after = (keras.config.dtype_policy().name, keras.config.floatx(),"
        " keras.config.image_data_format(), keras.config.backend());"
        "heavy = [m for m in ('keras_hub', 'tensorflow_text') if m in sys.modules];"
        "print(json.dumps([before, after, heavy]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    before, after, heavy = json.loads(out.stdout.strip().splitlines()[-1])
    assert before == after
    assert heavy == []  # tokenizers and samplers load only when used


def test_module_layout_one_public_layer_per_module():
    import importlib

    for name in PUBLIC[:12]:
        snake = "".join("_" + c.lower() if c.isupper() else c for c in name)[1:]
        module = importlib.import_module(f"keras_stageshow.layers.{snake}")
        assert getattr(module, name) is getattr(ks, name)
