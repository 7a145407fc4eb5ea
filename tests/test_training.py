"""The paper's training recipe, learning a real task, and generation."""

import keras
import numpy as np
import pytest

import keras_stageshow as ks
from keras_stageshow.datasets import copy_or_reverse


def test_schedule_follows_the_paper_formula():
    schedule = ks.TransformerSchedule(d_model=512, warmup_steps=4000)
    for step in [0, 99, 3999, 3999 * 4]:
        n = step + 1
        expected = 512**-0.5 * min(n**-0.5, n * 4000**-1.5)
        assert float(schedule(step)) == pytest.approx(expected, rel=1e-5)
    # Peak at the end of warmup.
    assert float(schedule(3999)) > float(schedule(3000))
    assert float(schedule(3999)) > float(schedule(8000))


def test_schedule_config_round_trip():
    schedule = ks.TransformerSchedule(256, warmup_steps=100, scale=2.0)
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(schedule)
    )
    assert float(restored(50)) == pytest.approx(float(schedule(50)))


def test_loss_is_mean_over_real_tokens_with_label_smoothing():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 5)).astype("float32")
    labels = np.array([[1, 2, 0], [3, 0, 0]])
    eps = 0.1
    loss = ks.MaskedSparseCategoricalCrossentropy(label_smoothing=eps)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = []
    for b, t in [(0, 0), (0, 1), (1, 0)]:
        nll = -log_probs[b, t, labels[b, t]]
        expected.append((1 - eps) * nll + eps * -log_probs[b, t].mean())
    assert float(loss(labels, logits)) == pytest.approx(np.mean(expected), rel=1e-5)
    # Adding padding does not change it.
    padded_labels = np.pad(labels, ((0, 0), (0, 4)))
    padded_logits = np.pad(logits, ((0, 0), (0, 4), (0, 0)))
    assert float(loss(padded_labels, padded_logits)) == pytest.approx(
        np.mean(expected), rel=1e-5
    )


def test_loss_is_float32_safe_for_half_precision_logits():
    loss = ks.MaskedSparseCategoricalCrossentropy(label_smoothing=0.1)
    logits = np.full((1, 2, 4), 60000.0, "float16")
    value = float(loss(np.array([[1, 2]]), logits))
    assert np.isfinite(value)


def test_masked_accuracy_ignores_padding_and_accumulates():
    metric = ks.MaskedAccuracy()
    preds = np.eye(4)[[[1, 2, 0, 0]]]  # predicts 1, 2, 0, 0
    metric.update_state(np.array([[1, 3, 0, 0]]), preds)  # 1 of 2 real
    metric.update_state(np.array([[1, 2, 0, 0]]), preds)  # 2 of 2 real
    assert float(metric.result()) == pytest.approx(3 / 4)
    restored = ks.MaskedAccuracy.from_config(metric.get_config())
    assert restored.pad_id == 0


def test_masked_accuracy_counts_argmax_hits_in_every_dtype():
    rng = np.random.default_rng(0)
    # Each row a permutation of 0..10: no ties, exact in every dtype.
    logits = rng.permuted(np.tile(np.arange(11.0), (3, 5, 1)), axis=-1)
    labels = rng.integers(1, 11, (3, 5))
    labels[:, 0] = logits[:, 0].argmax(-1)  # some hits for sure
    labels[:, -1] = 0  # padding
    real = labels != 0
    expected = ((logits.argmax(-1) == labels) & real).sum() / real.sum()
    assert 0 < expected < 1
    for dtype in ("float32", "bfloat16", "float16"):
        metric = ks.MaskedAccuracy()
        metric.update_state(labels, keras.ops.cast(logits, dtype))
        assert float(metric.result()) == pytest.approx(expected), dtype


@pytest.mark.tf_only
def test_masked_accuracy_takes_one_argmax_op_on_tensorflow():
    """Keras's `ops.argmax` rewrites -0.0 before TensorFlow's argmax: four
    passes over the logits that made the metric 5% of the training step
    (benchmarks/README.md, section 5). The metric skips them."""
    import tensorflow as tf

    metric = ks.MaskedAccuracy()
    update = tf.function(metric.update_state)
    graph = update.get_concrete_function(
        tf.TensorSpec((2, 3), tf.int32), tf.TensorSpec((2, 3, 7), tf.bfloat16)
    ).graph
    op_types = [op.type for op in graph.get_operations()]
    assert op_types.count("ArgMax") == 1
    assert not {"BitwiseAnd", "Bitcast", "SelectV2"} & set(op_types), op_types


def test_compile_with_no_arguments_is_the_paper_recipe():
    model = ks.Transformer(50, 50, num_layers=1, d_model=32, num_heads=4, d_ff=64)
    model.compile()
    optimizer = model.optimizer
    assert isinstance(optimizer, keras.optimizers.Adam)
    assert optimizer.beta_1 == 0.9 and optimizer.beta_2 == 0.98
    assert optimizer.epsilon == 1e-9
    schedule = optimizer._learning_rate
    assert isinstance(schedule, ks.TransformerSchedule)
    assert (schedule.d_model, schedule.warmup_steps) == (32, 4000)
    assert model.loss.label_smoothing == 0.1
    ids = np.array([[5, 6, 7]])
    history = model.fit((ids, ids), ids, epochs=1, verbose=0)
    assert set(history.history) == {"loss", "masked_accuracy"}


def test_fit_learns_copy_or_reverse_on_held_out_data(trained_model):
    (source, target_in), target_out = copy_or_reverse(500, seed=99)
    results = trained_model.evaluate(
        (source, target_in), target_out, verbose=0, return_dict=True
    )
    assert results["masked_accuracy"] >= 0.95, results


def test_auto_dtype_policy_is_bfloat16_only_where_the_cpu_has_it():
    from keras_stageshow.training.precision import resolve_dtype_policy

    assert resolve_dtype_policy("auto", {"avx2", "avx512f", "avx512_bf16"}) == "mixed_bfloat16"
    assert resolve_dtype_policy("auto", {"avx2", "amx_bf16"}) == "mixed_bfloat16"
    assert resolve_dtype_policy("auto", {"avx2", "fma", "avx512f"}) == "float32"
    assert resolve_dtype_policy("mixed_float16", set()) == "mixed_float16"
    assert resolve_dtype_policy("auto", {"avx512_bf16"}, has_gpu=True) == "mixed_float16"
    with pytest.raises(ValueError, match="dtype_policy"):
        resolve_dtype_policy("bfloat16")


@pytest.mark.tf_only  # a training run: tf.data and the tokenizers
def test_a_run_trains_and_saves_in_its_dtype_policy(tmp_path):
    import json

    from keras_stageshow.datasets.synthetic import stage_language_pairs
    from keras_stageshow.run_dir import load_model
    from keras_stageshow.training.run import train_translation_run

    source, target = stage_language_pairs(200, seed=1)
    out = tmp_path / "run"
    train_translation_run(
        str(out), (source[:160], target[:160]), (source[160:], target[160:]),
        verbose=0, num_layers=1, d_model=16, num_heads=2, d_ff=32, max_length=40,
        vocabulary_size=100, epochs=1, tokens_per_batch=256, warmup_steps=10,
        dtype_policy="mixed_bfloat16",
    )
    run = json.loads((out / "run.json").read_text())
    assert run["settings"]["dtype_policy"] == "mixed_bfloat16"
    model = load_model(str(out / "model.keras"))
    assert model.dtype_policy.name == "mixed_bfloat16"
    assert np.isfinite(run["best_val_loss"])


def test_a_saved_run_keeps_what_it_did_before_a_setting_existed(monkeypatch):
    from keras_stageshow.training import recipe

    # Even when today's defaults differ, a run saved before these settings
    # existed resumes with the values its code used.
    monkeypatch.setitem(recipe.DEFAULT_SETTINGS, "attention_dropout_rate", 0.1)
    monkeypatch.setitem(recipe.DEFAULT_SETTINGS, "dtype_policy", "auto")
    saved = {k: v for k, v in recipe.DEFAULT_SETTINGS.items()
             if k not in recipe.SETTINGS_BEFORE_THEY_EXISTED}
    settings = recipe.settings_of_saved_run({**saved, "d_model": 64})
    assert settings["attention_dropout_rate"] == 0.0
    assert settings["dtype_policy"] == "float32"
    assert settings["bounded_shapes"] is False
    assert settings["patience"] == 0  # it never stopped on val
    assert settings["d_model"] == 64
    # A setting the run saved is kept as saved.
    assert recipe.settings_of_saved_run(
        {**saved, "attention_dropout_rate": 0.2}
    )["attention_dropout_rate"] == 0.2


@pytest.mark.tf_only  # a training run: tf.data and the tokenizers
def test_a_run_resumes_with_every_default_setting_passed_again(tmp_path):
    import json

    from keras_stageshow.datasets.synthetic import stage_language_pairs
    from keras_stageshow.training.recipe import DEFAULT_SETTINGS
    from keras_stageshow.training.run import train_translation_run

    # Every default passed explicitly, `bounded_shapes`
    # None ("follow jit_compile") and `dtype_policy` "auto" included, which
    # the run resolved and saved when it began.
    source, target = stage_language_pairs(200, seed=1)
    settings = {
        **DEFAULT_SETTINGS, "num_layers": 1, "d_model": 16, "num_heads": 2,
        "d_ff": 32, "max_length": 40, "vocabulary_size": 100,
        "tokens_per_batch": 256, "warmup_steps": 10, "average_last": 0,
    }
    pairs = ((source[:160], target[:160]), (source[160:], target[160:]))
    out = str(tmp_path / "run")
    first = train_translation_run(out, *pairs, verbose=0, **{**settings, "epochs": 1})
    assert first["settings"]["bounded_shapes"] is False
    assert first["settings"]["dtype_policy"] != "auto"
    assert first["settings"]["dropout_rate"] == 0.1  # one epoch: a short run
    # The same call again is accepted (the run is complete: it is kept)...
    train_translation_run(out, *pairs, verbose=0, **{**settings, "epochs": 1})
    # ...while a changed model setting is refused, by name.
    with pytest.raises(ValueError, match="d_model: 16 -> 32"):
        train_translation_run(out, *pairs, verbose=0, **{**settings, "d_model": 32})
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["status"] == "complete" and run["epochs_done"] == 1


def test_a_resumed_run_refuses_changed_settings_by_name():
    from keras_stageshow.training import recipe

    saved = recipe.new_run_settings({"d_model": 16, "dtype_policy": "float32"})
    assert saved["bounded_shapes"] is False  # None follows jit_compile
    # Resumable settings are applied; "auto" and None keep what was saved,
    # a dropout chosen for a short budget too when a longer one resumes it.
    resumed = recipe.resumed_run_settings(
        saved,
        {"epochs": 3, "dtype_policy": "auto", "bounded_shapes": None,
         "dropout_rate": "auto", "time_limit_minutes": 135.0},
        "run",
    )
    assert resumed == {**saved, "epochs": 3, "time_limit_minutes": 135.0}
    assert resumed["dropout_rate"] == 0.15  # 20 epochs when it began
    with pytest.raises(ValueError, match=r"run holds a run with other settings "
                       r"\(d_model: 16 -> 32, seed: 0 -> 1\)"):
        recipe.resumed_run_settings(saved, {"seed": 1, "d_model": 32}, "run")
    with pytest.raises(TypeError, match="Unknown training settings"):
        recipe.check_settings({"d_modle": 16})


@pytest.mark.parametrize(
    "budget, dropout_rate",
    [
        ({}, 0.15),  # `stageshow train`: 20 epochs
        ({"epochs": 19}, 0.1),
        ({"epochs": 27}, 0.15),
        ({"epochs": 28}, 0.2),
        ({"epochs": 60}, 0.2),  # notebook 02 on a GPU
        # A time limit's epochs are known once the run has timed its step
        # (tests/test_pace.py).
        ({"time_limit_minutes": 45.0}, "auto"),
        ({"epochs": 60, "time_limit_minutes": 45.0}, "auto"),
        # An epoch limit below the lowest threshold settles it without a
        # pace; one above it does not (the limit may afford fewer epochs).
        ({"epochs": 19, "time_limit_minutes": 45.0}, 0.1),
        ({"epochs": 20, "time_limit_minutes": 45.0}, "auto"),
        ({"time_limit_minutes": 135.0, "dropout_rate": 0.05}, 0.05),  # given
    ],
)
def test_a_new_run_gets_the_dropout_of_its_budget(budget, dropout_rate):
    from keras_stageshow.training import recipe

    assert recipe.DEFAULT_SETTINGS["dropout_rate"] == "auto"
    assert recipe.new_run_settings(budget)["dropout_rate"] == dropout_rate


def test_history_rows_after_the_resumed_epoch_are_dropped(tmp_path):
    from keras_stageshow.training.callbacks import trim_history

    trim_history(tmp_path, 1)  # no history yet: nothing to do
    history = tmp_path / "history.csv"
    rows = "epoch,loss\n0,2.0\n1,1.5\n2,1.2\n"
    history.write_text(rows)
    trim_history(tmp_path, 3)
    assert history.read_text() == rows
    trim_history(tmp_path, 1)  # a run resumed at epoch 1 trains 1 and 2 again
    assert history.read_text() == "epoch,loss\n0,2.0\n"
