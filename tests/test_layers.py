"""Standard checks for every stage-show layer, then per-layer behaviour."""

import keras
import numpy as np
import pytest
from keras.ops import convert_to_numpy as to_numpy

import keras_stageshow as ks

B, S, T, D = 2, 5, 4, 16
RNG = np.random.default_rng(0)
X = RNG.normal(size=(B, S, D)).astype("float32")
Q = RNG.normal(size=(B, T, D)).astype("float32")
IDS = np.array([[5, 6, 7, 0, 0], [8, 9, 10, 11, 12]], "int32")
TARGET_IDS = np.array([[2, 5, 0, 0], [2, 6, 7, 8]], "int32")
BLOCK = dict(dropout_rate=0.0)

# (class, constructor kwargs, positional inputs, expected output shape)
CASES = [
    (ks.Preprocess, dict(vocabulary_size=20, d_model=D, max_length=8), (IDS,), (B, S, D)),
    (ks.Rehearsal, dict(num_heads=2, key_dim=8), (Q, X), (B, T, D)),
    (ks.Adjust, dict(dropout_rate=0.1), (X, X), (B, S, D)),
    (ks.CrewDiscussion, dict(d_ff=32, **BLOCK), (X,), (B, S, D)),
    (ks.AssessmentDiscussion, dict(d_ff=32, **BLOCK), (Q,), (B, T, D)),
    (ks.PracticeRound, dict(num_heads=2, d_ff=32, **BLOCK), (X,), (B, S, D)),
    (ks.AskQuestions, dict(num_heads=2, **BLOCK), (Q,), (B, T, D)),
    (ks.WatchShow, dict(num_heads=2, **BLOCK), (Q, X), (B, T, D)),
    (ks.AssessmentRound, dict(num_heads=2, d_ff=32, **BLOCK), (Q, X), (B, T, D)),
    (
        ks.StageShow,
        dict(vocabulary_size=20, num_layers=2, d_model=D, num_heads=2, d_ff=32, **BLOCK),
        (IDS,),
        (B, S, D),
    ),
    (
        ks.OscarAssessment,
        dict(vocabulary_size=20, num_layers=2, d_model=D, num_heads=2, d_ff=32, **BLOCK),
        (TARGET_IDS, X),
        (B, T, D),
    ),
    (ks.Voting, dict(vocabulary_size=20), (Q,), (B, T, 20)),
]
IDS_CASES = [c[0].__name__ for c in CASES]


@pytest.mark.parametrize("cls,kwargs,inputs,shape", CASES, ids=IDS_CASES)
def test_eager_call_shape(cls, kwargs, inputs, shape):
    layer = cls(**kwargs)
    assert tuple(layer(*inputs).shape) == shape


@pytest.mark.parametrize("cls,kwargs,inputs,shape", CASES, ids=IDS_CASES)
def test_symbolic_call_shape(cls, kwargs, inputs, shape):
    symbolic = [keras.Input(batch_shape=x.shape, dtype=x.dtype) for x in inputs]
    assert tuple(cls(**kwargs)(*symbolic).shape) == shape


@pytest.mark.parametrize("cls,kwargs,inputs,shape", CASES, ids=IDS_CASES)
def test_config_round_trip_rebuilds_same_layer(cls, kwargs, inputs, shape):
    layer = cls(**kwargs)
    expected = layer(*inputs)
    restored = cls.from_config(layer.get_config())
    assert restored.get_config() == layer.get_config()
    # Rebuilds from the stored build shapes alone, with the same weights.
    restored.build_from_config(layer.get_build_config())
    assert len(restored.weights) == len(layer.weights) > 0 or cls is ks.Adjust
    restored.set_weights(layer.get_weights())
    np.testing.assert_allclose(
        to_numpy(restored(*inputs)), to_numpy(expected), rtol=1e-6, atol=1e-6
    )


@pytest.mark.parametrize("cls,kwargs,inputs,shape", CASES, ids=IDS_CASES)
def test_serialized_layer_deserializes_built(cls, kwargs, inputs, shape):
    layer = cls(**kwargs)
    layer(*inputs)
    config = keras.saving.serialize_keras_object(layer)
    restored = keras.saving.deserialize_keras_object(config)
    assert restored.built and len(restored.weights) == len(layer.weights)


@pytest.mark.parametrize("cls,kwargs,inputs,shape", CASES, ids=IDS_CASES)
def test_respects_dtype_policy(cls, kwargs, inputs, shape):
    layer = cls(**kwargs, dtype="mixed_bfloat16")
    output = layer(*inputs)
    expected = "float32" if cls is ks.Voting else "bfloat16"
    assert keras.backend.standardize_dtype(output.dtype) == expected
    assert all(w.dtype == "float32" for w in layer.weights)
    for sublayer in layer._flatten_layers(include_self=False):
        assert sublayer.dtype_policy.name == "mixed_bfloat16", sublayer.name


@pytest.mark.parametrize("cls,kwargs,inputs,shape", CASES, ids=IDS_CASES)
def test_one_fit_step_changes_weights(cls, kwargs, inputs, shape):
    layer = cls(**kwargs)
    symbolic = [keras.Input(batch_shape=x.shape, dtype=x.dtype) for x in inputs]
    model = keras.Model(symbolic, layer(*symbolic))
    before = [w.copy() for w in model.get_weights()]
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    model.fit(list(inputs), np.ones((B, *shape[1:]), "float32"), verbose=0)
    changed = [not np.allclose(a, b) for a, b in zip(before, model.get_weights())]
    assert any(changed) or cls is ks.Adjust and not before


def test_rehearsal_weights_load_into_keras_multi_head_attention():
    """Rehearsal composes Keras's projections instead of subclassing
    MultiHeadAttention; its variables keep MHA's names, shapes and order."""
    ours = ks.Rehearsal(num_heads=2, key_dim=8, value_dim=4)
    theirs = keras.layers.MultiHeadAttention(num_heads=2, key_dim=8, value_dim=4)
    ours(Q, X)
    # Built, not called: what is compared is the variables (and Keras's own
    # MultiHeadAttention cannot run value_dim != key_dim on JAX).
    theirs.build(Q.shape, X.shape)
    assert [w.shape for w in ours.weights] == [w.shape for w in theirs.weights]
    assert [w.path.split("/")[-2:] for w in ours.weights] == [
        [dense, kind]
        for dense in ("query", "key", "value", "attention_output")
        for kind in ("kernel", "bias")
    ]


@pytest.mark.tf_only  # tf.GradientTape
@pytest.mark.parametrize("kind", ["self", "cross", "cross_key_differs"])
def test_rehearsal_fused_projections_equal_keras_multi_head_attention(kind):
    """Rehearsal runs the Q/K/V (and output) projections as fused 2-D
    matmuls; with the same weights it must compute what Keras's own
    MultiHeadAttention computes, values and gradients."""
    import tensorflow as tf

    x = tf.constant(X)
    query = x if kind == "self" else tf.constant(Q)
    key = tf.constant(X + 1.0) if kind == "cross_key_differs" else x
    ours = ks.Rehearsal(num_heads=2, key_dim=8, value_dim=4)
    theirs = keras.layers.MultiHeadAttention(num_heads=2, key_dim=8, value_dim=4)
    ours(query, x, key=key)
    theirs(query, x, key=key)
    for weight in ours.weights:
        weight.assign(RNG.normal(size=weight.shape).astype("float32"))
    theirs.set_weights(ours.get_weights())
    fused = []  # how many projections each matmul served
    project = ours._project
    ours._project = lambda inputs, *projections: (
        fused.append(len(projections)) or project(inputs, *projections)
    )
    results = []
    for layer in (ours, theirs):
        with tf.GradientTape() as tape:
            out = layer(query, x, key=key)
            loss = tf.reduce_sum(out * np.arange(out.shape[-1], dtype="float32"))
        results.append((out, tape.gradient(loss, layer.trainable_weights)))
    expected = {"self": [3], "cross": [1, 2], "cross_key_differs": [1, 1, 1]}[kind]
    assert fused == expected
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-4, atol=1e-4)
    for ours_grad, theirs_grad in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(ours_grad, theirs_grad, rtol=1e-4, atol=1e-3)


def test_rehearsal_quantized_projections_keep_their_scales():
    """Fused projections read the kernels directly; int8-quantized ones must
    still go through EinsumDense's own call, or the raw int8 kernel would be
    used without its scale."""
    x = X
    layer = ks.Rehearsal(num_heads=2, key_dim=8)
    inputs = keras.Input((S, D))
    model = keras.Model(inputs, layer(inputs, inputs))
    before = to_numpy(layer(x, x))
    with pytest.warns(UserWarning):  # Dropout and Softmax have nothing to quantize
        model.quantize("int8")
    assert layer.query_dense.quantization_mode == "int8"
    after = to_numpy(layer(x, x))
    np.testing.assert_allclose(after, before, atol=0.05 * np.abs(before).max())


def test_preprocess_mask_marks_padding():
    layer = ks.Preprocess(20, D, max_length=8)
    mask = layer.compute_mask(IDS)
    np.testing.assert_array_equal(mask, IDS != 0)


def test_preprocess_scales_embedding_and_adds_sinusoids():
    layer = ks.Preprocess(20, 8, max_length=8, dropout_rate=0.0)
    ids = np.array([[3, 4]])
    out = to_numpy(layer(ids))
    table = to_numpy(layer.token_embedding.embeddings)
    pos = np.arange(2)[:, None]
    i = np.arange(4)[None, :]
    angle = pos / 10000 ** (2 * i / 8)
    pe = np.stack([np.sin(angle), np.cos(angle)], -1).reshape(2, 8)
    np.testing.assert_allclose(out[0], table[[3, 4]] * np.sqrt(8) + pe, atol=1e-5)


def test_positional_encoding_is_keras_hubs_to_the_bit():
    """Saved runs were trained with keras-hub's sinusoids; the fewer ops a
    decoding step computes them in give the same floats, at every position
    and from any start (a step's one position), so saved runs translate
    identically (tests/test_saved_runs.py): tolerance 0."""
    import keras_hub

    layer = ks.Preprocess(20, 512, max_length=512)
    reference = keras_hub.layers.SinePositionEncoding(dtype="float32")
    zeros = np.zeros((1, 512, 512), "float32")
    np.testing.assert_array_equal(
        to_numpy(layer.positional_encoding(512)), to_numpy(reference(zeros))
    )
    for start in (0, 7, 300, 511):
        np.testing.assert_array_equal(
            to_numpy(layer.positional_encoding(1, start_index=start)),
            to_numpy(reference(zeros[:, :1], start_index=start)),
        )


def test_preprocess_start_index_shifts_positions():
    layer = ks.Preprocess(20, 8, max_length=8, dropout_rate=0.0)
    ids = np.array([[3, 4, 5]])
    full = to_numpy(layer(ids))
    last = to_numpy(layer(ids[:, 2:], start_index=2))
    np.testing.assert_allclose(last[0, 0], full[0, 2], atol=1e-6)


def test_stage_show_output_carries_padding_mask():
    show = ks.StageShow(20, num_layers=1, d_model=D, num_heads=2, d_ff=32)
    np.testing.assert_array_equal(show.compute_mask(IDS), IDS != 0)


def test_adjust_post_norm_and_pre_norm():
    x = RNG.normal(size=(B, S, D)).astype("float32")
    residual = RNG.normal(size=(B, S, D)).astype("float32")
    post = ks.Adjust(dropout_rate=0.0)
    out = to_numpy(post(x, residual))
    total = x + residual
    expected = (total - total.mean(-1, keepdims=True)) / np.sqrt(
        total.var(-1, keepdims=True) + 1e-5
    )
    np.testing.assert_allclose(out, expected, atol=1e-4)
    pre = ks.Adjust(dropout_rate=0.0, norm_first=True)
    np.testing.assert_allclose(to_numpy(pre(x, residual)), total, atol=1e-6)
    assert np.allclose(to_numpy(pre.pre_norm(x)).std(-1), 1.0, atol=1e-2)


def test_voting_tied_to_embedding_uses_its_transpose():
    embedding = keras.layers.Embedding(20, D)
    embedding.build((None, None))
    voting = ks.Voting(20, token_embedding=embedding)
    logits = to_numpy(voting(Q))
    np.testing.assert_allclose(
        logits, Q @ to_numpy(embedding.embeddings).T, rtol=1e-5, atol=1e-5
    )
    assert voting.count_params() == 20 * D  # no weights of its own


def test_ask_questions_is_causal():
    ask = ks.AskQuestions(num_heads=2, dropout_rate=0.0)
    base = to_numpy(ask(Q))
    changed = Q.copy()
    changed[:, 2:] += 10.0
    out = to_numpy(ask(changed))
    np.testing.assert_allclose(out[:, :2], base[:, :2], atol=1e-5)
    assert not np.allclose(out[:, 2:], base[:, 2:])


def test_watch_show_ignores_padded_show_positions():
    watch = ks.WatchShow(num_heads=2, dropout_rate=0.0)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    base = to_numpy(watch(Q, X, enc_output_mask=mask))
    noisy = X.copy()
    noisy[0, 3:] = 99.0
    np.testing.assert_allclose(
        to_numpy(watch(Q, noisy, enc_output_mask=mask)), base, atol=1e-5
    )


def test_rehearsal_all_padding_row_gives_zeros_not_nan():
    rehearsal = ks.Rehearsal(num_heads=2, key_dim=8, use_bias=False)
    no_keys = np.zeros((B, T, S), bool)
    out, scores = rehearsal(Q, X, attention_mask=no_keys, return_attention_scores=True)
    out, scores = to_numpy(out), to_numpy(scores)
    assert np.all(np.isfinite(out)) and np.allclose(out, 0.0)
    assert np.allclose(scores, 0.0)
    fast = to_numpy(rehearsal(Q, X, attention_mask=no_keys))  # the fused path
    assert np.allclose(fast, 0.0)


def test_rehearsal_fused_and_explicit_paths_agree():
    rehearsal = ks.Rehearsal(num_heads=2, key_dim=8)
    mask = np.array([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1]], bool)[:, None, :]
    fast = rehearsal(Q, X, attention_mask=mask)
    explicit, scores = rehearsal(Q, X, attention_mask=mask, return_attention_scores=True)
    np.testing.assert_allclose(to_numpy(fast), to_numpy(explicit), atol=1e-5)
    np.testing.assert_allclose(to_numpy(scores).sum(-1), 1.0, atol=1e-5)
    assert np.allclose(to_numpy(scores)[0, :, :, 2:], 0.0)


@pytest.mark.parametrize(
    "cache_write",
    ["slice_update", pytest.param("in_place", marks=pytest.mark.tf_only)],
)
def test_rehearsal_cache_matches_full_attention(cache_write):
    rehearsal = ks.Rehearsal(num_heads=2, key_dim=8)
    full = to_numpy(rehearsal(Q, Q, use_causal_mask=True))
    cache = rehearsal.empty_cache(B, T, cache_write)
    for i in range(T):
        query = Q[:, i : i + 1]
        step, cache = rehearsal(
            query, query, cache=cache, cache_update_index=i, cache_write=cache_write
        )
        np.testing.assert_allclose(to_numpy(step)[:, 0], full[:, i], atol=1e-5)
    # Cross-attention over a precomputed, read-only cache.
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    full = to_numpy(rehearsal(Q, X, value_mask=mask))
    show = rehearsal.compute_cache(X)
    for i in range(T):
        step, same = rehearsal(Q[:, i : i + 1], cache=show, value_mask=mask)
        np.testing.assert_allclose(to_numpy(step)[:, 0], full[:, i], atol=1e-5)
        assert all(part is given for part, given in zip(same, show))


def test_mixed_float16_attention_is_finite_with_padding():
    layer = ks.PracticeRound(num_heads=2, d_ff=32, dtype="mixed_float16")
    # Second row entirely padding: its queries see no key at all.
    mask = np.array([[1, 1, 0, 0, 0], [0, 0, 0, 0, 0]], bool)
    out = to_numpy(layer(X * 4.0, padding_mask=mask)).astype("float32")
    assert np.all(np.isfinite(out))
    scores = layer(X * 4.0, padding_mask=mask, return_attention_scores=True)[1]
    scores = to_numpy(scores).astype("float32")
    assert np.all(np.isfinite(scores)) and np.allclose(scores[1], 0.0)
    assert np.allclose(scores[0, :, :, 2:], 0.0)


def test_show_keeps_its_mask_when_watched_twice():
    # Encode once, decode many times (as beam search and hand-written loops
    # do): the show's padding mask must survive the first cross-attention.
    show_layer = ks.StageShow(20, num_layers=1, d_model=D, num_heads=2, d_ff=32)
    assessment = ks.OscarAssessment(
        20, num_layers=1, d_model=D, num_heads=2, d_ff=32, dropout_rate=0.0
    )
    show = show_layer(IDS)
    first = to_numpy(assessment(TARGET_IDS, show))
    second = to_numpy(assessment(TARGET_IDS, show))
    explicit = to_numpy(
        assessment(TARGET_IDS, show, enc_output_mask=IDS != 0)
    )
    np.testing.assert_allclose(second, first, atol=1e-6)
    np.testing.assert_allclose(explicit, first, atol=1e-6)


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_cached_call_equals_the_full_call(norm_first):
    """The cached step (`call` with caches, a fixed
    `(output, self_attention_cache, cross_attention_cache)` return) computes
    what the full decoder computes at each position."""
    assessment = ks.OscarAssessment(
        20, num_layers=2, d_model=D, num_heads=2, d_ff=32, dropout_rate=0.0,
        norm_first=norm_first,
    )
    show_mask = IDS != 0
    ids = np.array([[2, 5, 6, 7], [2, 8, 9, 10]], "int32")
    full = to_numpy(assessment(ids, X, enc_output_mask=show_mask))
    cross = assessment.compute_cross_attention_cache(X)
    caches = assessment.empty_self_attention_cache(B, T)
    for i in range(T):
        out, caches, same = assessment(
            ids[:, i : i + 1],
            enc_output_mask=show_mask,
            self_attention_cache=caches,
            self_attention_cache_update_index=i,
            cross_attention_cache=cross,
        )
        assert len(caches) == 2
        # The show's cache comes back as given (read only).
        flat = zip(keras.tree.flatten(same), keras.tree.flatten(cross))
        assert all(part is given for part, given in flat)
        np.testing.assert_allclose(to_numpy(out)[:, 0], full[:, i], atol=1e-5)


def test_rehearsal_rejects_options_it_does_not_implement():
    with pytest.raises(ValueError, match="attention_axes"):
        ks.Rehearsal(num_heads=2, key_dim=8, attention_axes=(1, 2))
    with pytest.raises(ValueError, match="output_shape"):
        ks.Rehearsal(num_heads=2, key_dim=8, output_shape=(4, 4))
