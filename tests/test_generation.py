"""The awards ceremony: cached greedy, beam search and sampling."""

import keras
import numpy as np
import pytest

from conftest import random_ids
from conftest import tiny_transformer
from keras_stageshow.datasets import copy_or_reverse
from keras_stageshow.decoding import ceremony_for
from keras_stageshow.decoding.strategies import pick_sample


def test_cached_greedy_equals_uncached_greedy_on_a_trained_model(trained_model):
    (source, _), target_out = copy_or_reverse(16, seed=5)
    cached, cached_scores = trained_model.generate(
        source, max_new_tokens=14, return_scores=True
    )
    uncached, uncached_scores = trained_model.generate(
        source, max_new_tokens=14, use_cache=False, return_scores=True
    )
    np.testing.assert_array_equal(cached, uncached)
    np.testing.assert_allclose(cached_scores, uncached_scores, atol=1e-4)
    # The model really translates: most rows come out exactly right.
    exact = [
        np.array_equal(cached[i][: (row != 0).sum()], row[row != 0])
        for i, row in enumerate(target_out)
    ]
    assert np.mean(exact) >= 0.5


@pytest.mark.tf_only  # the XLA-free "in_place" cache write
@pytest.mark.parametrize("strategy", ["greedy", "beam"])
def test_xla_compiled_decoding_equals_the_plain_tf_function(trained_model, strategy):
    """`jit_compile=True` (the default) writes the cache with XLA's
    dynamic-update-slice, `False` with TensorFlow's in-place row update (the
    served graph's op); the decoded rows must not change."""
    (source, _), _ = copy_or_reverse(16, seed=6)
    results = [
        trained_model.generate(
            source, max_new_tokens=14, strategy=strategy, jit_compile=jit,
            return_scores=True,
        )
        for jit in (True, False)
    ]
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_allclose(results[0][1], results[1][1], atol=1e-4)
    for jit, write in ((True, "slice_update"), (False, "in_place")):
        ceremony = ceremony_for(trained_model, jit_compile=jit)
        assert ceremony.cache_write == write and ceremony.traced_functions


def test_the_cache_write_suits_the_backend():
    """TensorFlow without XLA writes the cache with its in-place row update;
    XLA and every other backend (JAX, PyTorch) with `slice_update`."""
    model = tiny_transformer()
    on_tensorflow = keras.backend.backend() == "tensorflow"
    without_xla = ceremony_for(model, jit_compile=False)
    assert without_xla.cache_write == ("in_place" if on_tensorflow else "slice_update")
    assert ceremony_for(model, jit_compile=True).cache_write == "slice_update"
    source = random_ids(2, 5)
    np.testing.assert_array_equal(
        model.generate(source, max_new_tokens=4, jit_compile=False),
        model.generate(source, max_new_tokens=4, jit_compile=True),
    )


def test_beam_search_with_one_beam_equals_greedy(trained_model):
    (source, _), _ = copy_or_reverse(16, seed=11)
    greedy, greedy_scores = trained_model.generate(
        source, max_new_tokens=14, return_scores=True
    )
    beam, beam_scores = trained_model.generate(
        source, max_new_tokens=14, strategy="beam", num_beams=1,
        length_penalty=0.0, return_scores=True,
    )
    np.testing.assert_array_equal(beam, greedy)
    np.testing.assert_allclose(beam_scores, greedy_scores, atol=1e-4)


def test_beam_search_translates_the_trained_task(trained_model):
    (source, _), target_out = copy_or_reverse(16, seed=12)
    beam = trained_model.generate(source, max_new_tokens=14, strategy="beam")
    exact = [
        np.array_equal(beam[i][: (row != 0).sum()], row[row != 0])
        for i, row in enumerate(target_out)
    ]
    assert np.mean(exact) >= 0.5


@pytest.mark.parametrize("strategy", ["greedy", "beam"])
def test_a_batch_decodes_each_row_as_it_would_alone(trained_model, strategy):
    (source, _), _ = copy_or_reverse(5, seed=6)
    # No max_new_tokens: each row's limit is its own source length + 50.
    batched, scores = trained_model.generate(
        source, strategy=strategy, return_scores=True
    )
    for i in range(len(source)):
        length = int((source[i] != 0).sum())
        alone, score = trained_model.generate(
            source[i : i + 1, :length], strategy=strategy, return_scores=True
        )
        width = alone.shape[1]
        np.testing.assert_array_equal(alone[0], batched[i, :width])
        assert np.all(batched[i, width:] == 0)
        np.testing.assert_allclose(score[0], scores[i], atol=1e-4)


def test_generation_stops_at_end_token_and_pads_after(trained_model):
    (source, _), _ = copy_or_reverse(8, seed=8)
    for strategy in ("greedy", "beam", "sample"):
        out = trained_model.generate(source, max_new_tokens=20, strategy=strategy, seed=1)
        assert out.shape == (8, 20)
        for row in out:
            ends = np.flatnonzero(row == 3)
            assert len(ends), strategy  # the trained model does end
            assert np.all(row[ends[0] + 1 :] == 0), strategy
            assert np.all(row[: ends[0]] != 0), strategy


def test_default_length_limit_is_source_length_plus_50_capped():
    # One layer: the limit is the loop's, not the stack's (each of the 57
    # steps costs half of two layers' time on the eager backends).
    model = tiny_transformer(max_length=100, num_layers=1)
    source = random_ids(2, 7)
    source[1, 3:] = 0
    out = model.generate(source, end_id=29)  # an untrained model rarely ends
    assert out.shape == (2, 57)
    # Row 1 has 3 real tokens: at most 53 generated tokens.
    assert np.all(out[1, 53:] == 0)
    capped = tiny_transformer(max_length=24, num_layers=1).generate(random_ids(1, 20))
    assert capped.shape == (1, 24)


def test_sampling_is_reproducible_with_a_seed_and_top_k_1_is_greedy(trained_model):
    (source, _), _ = copy_or_reverse(8, seed=9)
    first = trained_model.generate(
        source, strategy="sample", temperature=3.0, seed=5, max_new_tokens=14
    )
    again = trained_model.generate(
        source, strategy="sample", temperature=3.0, seed=5, max_new_tokens=14
    )
    other = trained_model.generate(
        source, strategy="sample", temperature=3.0, seed=6, max_new_tokens=14
    )
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    greedy = trained_model.generate(source, max_new_tokens=14)
    for options in ({"top_k": 1}, {"top_p": 1e-6}):
        sampled = trained_model.generate(
            source, strategy="sample", seed=1, max_new_tokens=14, **options
        )
        np.testing.assert_array_equal(sampled, greedy)


def test_pick_sample_follows_the_distribution_and_its_filters():
    logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05]], "float32"))
    grid = ((np.arange(2000) + 0.5) / 2000).astype("float32")  # stands in for U(0,1)
    rows = np.repeat(logits, len(grid), axis=0)
    tokens = np.asarray(pick_sample(rows, grid))
    np.testing.assert_allclose(
        np.bincount(tokens, minlength=4) / len(grid), [0.5, 0.3, 0.15, 0.05], atol=2e-3
    )
    top2 = np.asarray(pick_sample(rows, grid, top_k=2))
    np.testing.assert_allclose(
        np.bincount(top2, minlength=4) / len(grid), [0.625, 0.375, 0, 0], atol=2e-3
    )
    # top_p=0.7: {0.5, 0.3} is the smallest set reaching 0.7.
    nucleus = np.asarray(pick_sample(rows, grid, top_p=0.7))
    assert set(np.unique(nucleus)) == {0, 1}


@pytest.mark.tf_only  # counts the traces of a tf.function
def test_one_trace_serves_every_call_in_a_shape_bucket():
    model = tiny_transformer()
    model.generate(random_ids(3, 5), max_new_tokens=6)
    model.generate(random_ids(4, 9, seed=1), max_new_tokens=10)  # same buckets
    traced = ceremony_for(model).traced_functions
    assert len(traced) == 1
    (function,) = traced.values()
    assert function.experimental_get_tracing_count() == 1
    model.generate(random_ids(5, 5), max_new_tokens=6)  # batch bucket 8
    assert len(traced) == 2


@pytest.mark.tf_only  # counts the ops of TensorFlow's graph
@pytest.mark.parametrize("strategy, budget", [("greedy", 420), ("beam", 500)])
def test_the_xla_free_step_stays_small(strategy, budget):
    """Without XLA (the served graph) a decoding step runs op by op, so its
    op count is its cost. The step of a two-layer model is about 380 ops
    (greedy) and 450 (beam), from 690 and 837: 2-D matmuls instead of
    `tensordot` (no `Prod`/`GatherV2` of shapes), the sinusoids without
    einsums, one `TopKV2` for the greedy vote, one gather per reordered
    tensor. Fails if one of them comes back."""
    import tensorflow as tf

    from keras_stageshow.decoding.ceremony import AwardsCeremony
    from keras_stageshow.decoding.samplers import from_options

    ceremony = AwardsCeremony(tiny_transformer(), jit_compile=False, traced=False)
    sampler = from_options(strategy)
    loop = tf.function(
        lambda ids, limits: ceremony.generate(ids, limits, sampler),
        input_signature=[
            tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None], tf.int32)
        ],
        autograph=False,
    )
    graph = loop.get_concrete_function().graph.as_graph_def()
    functions = {f.signature.name: f for f in graph.library.function}
    bodies = [
        functions[node.attr["body"].func.name]
        for function in functions.values()
        for node in function.node_def
        if node.op in ("While", "StatelessWhile")
    ] + [functions[n.attr["body"].func.name] for n in graph.node if n.op == "While"]
    # The decoding loop is the largest (the others: request chunks).
    step = max(bodies, key=lambda body: len(body.node_def))
    ops = [n.op for n in step.node_def if n.op not in ("Const", "Identity", "NoOp")]
    assert len(ops) <= budget
    assert not {"Prod", "Einsum"} & set(ops)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"strategy": "nucleus"}, "strategy"),
        ({"strategy": "beam", "num_beams": 0}, "num_beams"),
        ({"strategy": "beam", "length_penalty": -1.0}, "length_penalty"),
        ({"strategy": "sample", "top_p": 0.0}, "top_p"),
        ({"strategy": "sample", "top_k": 0}, "top_k"),
        ({"strategy": "sample", "temperature": 0.0}, "temperature"),
        ({"strategy": "beam", "use_cache": False}, "use_cache"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"end_id": 99}, "end_id"),
        ({"jit_compile": "yes"}, "jit_compile"),
    ],
)
def test_generate_rejects_bad_options_naming_them(options, message):
    with pytest.raises(ValueError, match=message):
        tiny_transformer().generate(random_ids(1, 4), **options)


def test_generate_rejects_an_empty_batch():
    with pytest.raises(ValueError, match="source_ids"):
        tiny_transformer().generate(np.zeros((0, 4), "int32"))
