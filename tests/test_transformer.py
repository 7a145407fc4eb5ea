"""End-to-end behaviour of the Transformer: masks, sharing, saving, numerics."""

import keras
import numpy as np
import pytest
from keras.ops import convert_to_numpy as to_numpy
from conftest import random_ids
from conftest import tiny_transformer

import keras_stageshow as ks

SOURCE = random_ids(3, 7, seed=1)
TARGET = random_ids(3, 6, seed=2)


def logits(model, source, target):
    return to_numpy(model((source, target), training=False))


@pytest.mark.parametrize("norm_first", [False, True])
def test_logits_shape_and_dtype(norm_first):
    model = tiny_transformer(vocab=30, target_vocab=40, norm_first=norm_first)
    out = model((SOURCE, TARGET))
    assert tuple(out.shape) == (3, 6, 40)
    assert keras.backend.standardize_dtype(out.dtype) == "float32"


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_is_causal(norm_first):
    model = tiny_transformer(norm_first=norm_first)
    base = logits(model, SOURCE, TARGET)
    for t in range(TARGET.shape[1] - 1):
        changed = TARGET.copy()
        changed[:, t + 1 :] = random_ids(3, TARGET.shape[1] - t - 1, seed=t + 10)
        out = logits(model, SOURCE, changed)
        np.testing.assert_allclose(out[:, : t + 1], base[:, : t + 1], atol=1e-5)


def test_extra_source_padding_changes_nothing():
    model = tiny_transformer()
    source = SOURCE.copy()
    source[0, 4:] = 0  # a shorter first sentence
    base = logits(model, source, TARGET)
    padded = np.pad(source, ((0, 0), (0, 9)))
    np.testing.assert_allclose(logits(model, padded, TARGET), base, atol=1e-5)


def test_padded_source_positions_are_never_read_in_any_round():
    # Whatever sits at padded positions of the *embedded* source must not
    # matter: if any round attended to padding, changing the embedding row of
    # id 0 would change the logits.
    model = tiny_transformer(num_layers=3)
    source = SOURCE.copy()
    source[:, 5:] = 0
    base = logits(model, source, TARGET)
    embedding = model.stage_show.preprocess.token_embedding.embeddings
    table = to_numpy(embedding)
    table[0] = 50.0
    embedding.assign(table)
    np.testing.assert_allclose(logits(model, source, TARGET), base, atol=1e-5)


def test_extra_target_padding_changes_nothing():
    model = tiny_transformer()
    target = TARGET.copy()
    target[1, 3:] = 0
    base = logits(model, SOURCE, target)
    padded = np.pad(target, ((0, 0), (0, 5)))
    np.testing.assert_allclose(logits(model, SOURCE, padded)[:, :6], base, atol=1e-5)


def test_batch_gives_same_logits_as_rows_alone():
    model = tiny_transformer()
    source = SOURCE.copy()
    source[0, 3:] = 0
    source[2, 5:] = 0
    batched = logits(model, source, TARGET)
    for i in range(3):
        length = int((source[i] != 0).sum())
        alone = logits(model, source[i : i + 1, :length], TARGET[i : i + 1])
        np.testing.assert_allclose(alone[0], batched[i], atol=1e-5)


def test_attention_scores_for_every_round():
    model = tiny_transformer(num_layers=3)
    source = SOURCE.copy()
    source[0, 4:] = 0
    scores = model.attention_scores((source, TARGET))
    assert set(scores) == {"rehearsal", "ask_questions", "watch_show"}
    for name, shape in [
        ("rehearsal", (3, 2, 7, 7)),
        ("ask_questions", (3, 2, 6, 6)),
        ("watch_show", (3, 2, 6, 7)),
    ]:
        assert len(scores[name]) == 3
        for round_scores in scores[name]:
            round_scores = to_numpy(round_scores)
            assert round_scores.shape == shape
    for round_scores in scores["ask_questions"]:
        upper = np.triu(np.ones((6, 6), bool), k=1)
        assert np.allclose(to_numpy(round_scores)[..., upper], 0.0)
    for name in ("rehearsal", "watch_show"):
        for round_scores in scores[name]:
            assert np.allclose(to_numpy(round_scores)[0, ..., 4:], 0.0)


def test_target_embedding_is_the_projection():
    model = tiny_transformer()
    model((SOURCE, TARGET))
    target_embedding = model.oscar_assessment.preprocess.token_embedding
    assert model.voting.token_embedding is target_embedding
    assert model.voting.dense is None


def test_share_embeddings_uses_one_matrix():
    separate = tiny_transformer(vocab=30)
    shared = tiny_transformer(vocab=30, share_embeddings=True)
    separate((SOURCE, TARGET))
    shared((SOURCE, TARGET))
    assert (
        shared.stage_show.preprocess.token_embedding
        is shared.oscar_assessment.preprocess.token_embedding
    )
    assert separate.count_params() - shared.count_params() == 30 * 16
    embedding_weights = [w for w in shared.weights if "embeddings" in w.path]
    assert len(embedding_weights) == 1


def test_share_embeddings_needs_one_vocabulary():
    with pytest.raises(ValueError, match="share_embeddings"):
        ks.Transformer(30, 40, share_embeddings=True)


@pytest.mark.parametrize("share_embeddings", [False, True])
def test_save_and_load_is_exact_in_safe_mode(tmp_path, share_embeddings):
    model = tiny_transformer(share_embeddings=share_embeddings, norm_first=share_embeddings)
    model.compile(warmup_steps=10)
    model.fit((SOURCE, TARGET), TARGET, epochs=1, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(restored, ks.Transformer)
    assert restored.get_config() == model.get_config()
    np.testing.assert_array_equal(logits(restored, SOURCE, TARGET), logits(model, SOURCE, TARGET))
    if share_embeddings:
        assert (
            restored.stage_show.preprocess.token_embedding
            is restored.oscar_assessment.preprocess.token_embedding
        )
    # The compile state comes back too, and training continues from it.
    assert restored.compiled
    assert int(restored.optimizer.iterations) == int(model.optimizer.iterations)
    restored.fit((SOURCE, TARGET), TARGET, epochs=1, verbose=0)


def test_default_constructor_is_the_paper_base_model():
    model = ks.Transformer(37000, 37000, share_embeddings=True)
    config = model.get_config()
    assert (config["num_layers"], config["d_model"], config["num_heads"]) == (6, 512, 8)
    assert (config["d_ff"], config["dropout_rate"]) == (2048, 0.1)
    assert config["norm_first"] is False
    model.build(((None, 10), (None, 10)))
    # 6+6 layers of the base model with one shared 37,000 x 512 matrix.
    assert model.count_params() == 63_082_496


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_trains_without_nans(policy):
    if policy == "mixed_float16" and keras.backend.backend() == "jax":
        import jax

        if jax.default_backend() == "cpu":
            # keras.ops.dot_product_attention asks for it under jit.
            pytest.skip("JAX's CPU dot_general has no float16 x float16 -> float32")
    keras.config.set_dtype_policy(policy)
    model = tiny_transformer(dropout_rate=0.1)
    source = SOURCE.copy()
    source[0, 3:] = 0
    model.compile(warmup_steps=5)
    history = model.fit((source, TARGET), TARGET, epochs=3, verbose=0)
    assert all(np.isfinite(history.history["loss"]))
    out = model((source, TARGET))
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    assert np.all(np.isfinite(to_numpy(out)))
    if policy == "mixed_float16":
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)


# -- int8 where it pays (issue 25) ---------------------------------------------


def quantized_int8(model, **options):
    """`model.quantize("int8", **options)`, built first."""
    import warnings

    model((SOURCE, TARGET))
    with warnings.catch_warnings():  # LayerNormalization, Dropout: nothing to quantize
        warnings.filterwarnings("ignore", ".*does not have a `quantize` method")
        model.quantize("int8", **options)
    return model


def layer_paths(model, variable_name, dtype=None):
    """The paths (below the model) of the layers with a variable of that
    name (and dtype)."""
    return {
        v.path.partition("/")[2].rpartition("/")[0]
        for v in model.variables
        if v.path.endswith(f"/{variable_name}") and dtype in (None, v.dtype)
    }


def int8_layers(model):
    """The layers whose kernel or embeddings were quantized."""
    return layer_paths(model, "kernel", "int8") | layer_paths(model, "embeddings", "int8")


@pytest.mark.parametrize("share_embeddings", [False, True])
def test_int8_quantize_keeps_the_tied_vote_float(share_embeddings):
    """Keras would quantize the embedding the vote is tied to, and the vote
    would then multiply by its raw int8 table, without the scales (logits
    ~300x too large here); `Transformer.quantize` keeps it float."""
    model = tiny_transformer(share_embeddings=share_embeddings)
    before = logits(model, SOURCE, TARGET)
    quantized_int8(model)
    tied = model.voting.token_embedding
    assert tied.dtype_policy.quantization_mode is None
    assert tied.embeddings.dtype == "float32"
    kernels = layer_paths(model, "kernel")
    untied = set() if share_embeddings else {"stage_show/preprocess/token_embedding"}
    assert len(kernels) == 2 * 6 + 2 * 10  # Dense and EinsumDense, 2 + 2 rounds
    assert int8_layers(model) == kernels | untied
    after = logits(model, SOURCE, TARGET)
    np.testing.assert_allclose(after, before, atol=0.05 * np.abs(before).max())


def test_int8_quantize_keeps_the_user_filters():
    model = quantized_int8(tiny_transformer(), filters="inner_dense")
    assert int8_layers(model) == {
        f"{stack}_{i}/{block}/inner_dense"
        for stack, block in (
            ("stage_show/practice_round", "crew_discussion"),
            ("oscar_assessment/assessment_round", "assessment_discussion"),
        )
        for i in (0, 1)
    }
    # Asked for by name, the tied embedding still stays float.
    shared = quantized_int8(
        tiny_transformer(share_embeddings=True), filters=["token_embedding", "^key$"]
    )
    assert {path.rpartition("/")[2] for path in int8_layers(shared)} == {"key"}
    chosen = quantized_int8(
        tiny_transformer(), filters=lambda layer: layer.name == "token_embedding"
    )
    assert int8_layers(chosen) == {"stage_show/preprocess/token_embedding"}
    model = tiny_transformer()
    model((SOURCE, TARGET))
    with pytest.raises(ValueError, match="`filters`"):
        model.quantize("int8", filters=3)


def test_generate_decodes_with_the_quantized_kernels():
    """The decoding loops traced before `quantize` captured the float
    kernels; they are dropped, so `generate` scores as a model quantized
    before it ever decoded."""
    model = tiny_transformer(num_layers=1)
    model((SOURCE, TARGET))
    fresh = ks.Transformer.from_config(model.get_config())
    fresh.set_weights(model.get_weights())
    options = dict(max_new_tokens=4, return_scores=True, jit_compile=False)
    _, float_scores = model.generate(SOURCE, **options)
    quantized_int8(model)
    quantized_int8(fresh)
    _, scores = model.generate(SOURCE, **options)
    _, expected = fresh.generate(SOURCE, **options)
    np.testing.assert_array_equal(scores, expected)
    assert not np.array_equal(scores, float_scores)
