"""benchmarks/ctranslate2_yardstick.py: our weights in a CTranslate2
`TransformerSpec` give our numbers, and the smoke run (the fixture run,
16 sentences) gives our greedy tokens and a complete JSON line."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

ctranslate2 = pytest.importorskip("ctranslate2")

pytestmark = [pytest.mark.tf_only, pytest.mark.benchmark_smoke]  # the SavedModel export, the tokenizers

BENCHMARKS = os.path.join(os.path.dirname(__file__), "..", "benchmarks")
SCRIPT = os.path.join(BENCHMARKS, "ctranslate2_yardstick.py")
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


@pytest.fixture(scope="module")
def yardstick():
    sys.path.insert(0, BENCHMARKS)
    try:
        import ctranslate2_yardstick
    finally:
        sys.path.remove(BENCHMARKS)
    return ctranslate2_yardstick


@pytest.fixture(scope="module")
def smoke_line(data_dir):
    result = subprocess.run(
        [sys.executable, SCRIPT, "--smoke", "--data-dir", data_dir],
        capture_output=True, text=True, env=ENV, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_smoke_gives_our_greedy_tokens_and_every_field(smoke_line):
    line = smoke_line
    assert line["benchmark"] == "ctranslate2_yardstick"
    assert line["smoke"] is True
    assert line["sentences"] == 16
    # The fixture decodes to the same greedy tokens in both engines, from
    # the same source ids (which CTranslate2's SentencePiece path also makes).
    assert line["ct2_tokenization_same_ids"] == "16/16"
    assert line["greedy_tokens_identical"]["ct2_float32"] == "16/16"
    assert line["greedy_translations_identical_to_library"]["served"] == "16/16"
    assert line["greedy_translations_identical_to_library"]["ct2_float32"] == "16/16"
    engines = {"library", "served", "ct2_float32", "ct2_int8"}
    for key in (
        "latency_batch1_median_ms",
        "greedy_batch32_sentences_per_second",
        "beam4_batch32_sentences_per_second",
    ):
        assert set(line[key]) == engines
        assert all(value > 0 for value in line[key].values())
    for strategy in ("greedy_batch32", "beam4_batch32"):
        assert set(line["bleu"][strategy]) == engines
        for scores in line["bleu"][strategy].values():
            assert set(scores) == {"sacrebleu", "bleu_lc_tok"}
    for name in ("ct2_float32", "ct2_int8"):
        assert set(line[f"speed_ratio_served_over_{name}"]) == {
            "latency_batch1", "greedy_batch32", "beam4_batch32",
        }
    assert line["threads"]["ctranslate2"] == {"intra_threads": 2, "inter_threads": 1}
    assert {"model", "extensions"} <= set(line["cpu"])


def test_without_run_names_the_flag():
    result = subprocess.run(
        [sys.executable, SCRIPT], capture_output=True, text=True, env=ENV, timeout=120
    )
    assert result.returncode == 2
    assert "--run" in result.stderr


@pytest.mark.parametrize(
    "norm_first, share_embeddings", [(True, False), (False, True)]
)
def test_spec_scores_as_our_model(yardstick, tmp_path, norm_first, share_embeddings):
    """Teacher-forced log-probabilities of a random model (pre- or
    post-norm, shared embeddings or two vocabularies) through the spec."""
    import keras_stageshow as ks
    from keras_stageshow.decoding.strategies import NEG_INF

    vocab, target_vocab = 40, 40 if share_embeddings else 36
    model = ks.Transformer(
        vocab, target_vocab, num_layers=2, d_model=16, num_heads=2, d_ff=32,
        dropout_rate=0.0, max_length=24, norm_first=norm_first,
        share_embeddings=share_embeddings,
    )
    model.build(((None, None), (None, None)))
    if norm_first:  # a final LayerNorm that is not the identity
        for norm in (model.stage_show.final_norm, model.oscar_assessment.final_norm):
            norm.gamma.assign(np.linspace(0.5, 1.5, 16).astype("float32"))
            norm.beta.assign(np.linspace(-0.2, 0.2, 16).astype("float32"))

    def pieces(n, prefix):
        return ["<pad>", "<unk>", "<s>", "</s>"] + [f"{prefix}{i}" for i in range(4, n)]

    source_pieces, target_pieces = pieces(vocab, "s"), pieces(target_vocab, "t")
    spec = yardstick.transformer_spec(model, source_pieces, target_pieces)
    spec.validate()
    spec.optimize(quantization="float32")
    spec.save(str(tmp_path))
    translator = ctranslate2.Translator(str(tmp_path), intra_threads=1)

    rng = np.random.default_rng(0)
    source = [list(rng.integers(4, vocab, n)) + [3] for n in (7, 11)]
    target = [list(rng.integers(4, target_vocab, n)) for n in (5, 9)]
    results = translator.score_batch(
        [[source_pieces[i] for i in row] for row in source],
        [[target_pieces[i] for i in row] for row in target],
    )
    for src, tgt, result in zip(source, target, results):
        decoder_in = np.array([[2] + tgt], "int32")
        labels = tgt + [3]
        logits = keras.ops.convert_to_numpy(
            model((np.array([src], "int32"), decoder_in), training=False)
        )[0]
        logits[:, 0] += NEG_INF  # the spec's bias: never vote padding
        shifted = logits - logits.max(-1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
        ours = log_probs[np.arange(len(labels)), labels]
        np.testing.assert_allclose(result.log_probs, ours, atol=2e-4)
