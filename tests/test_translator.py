"""Text in, text out: the Translator and RUN_DIR loading."""

import numpy as np
import pytest

from conftest import stage_translator
import keras_stageshow as ks
from keras_stageshow import SubwordTokenizer
from keras_stageshow import Translator

pytestmark = pytest.mark.tf_only  # the tokenizers


@pytest.fixture(scope="module")
def translator():
    return stage_translator()


def test_translate_keeps_order_and_handles_empty_strings(translator):
    texts = ["ein hundo siehta", "", "de katzo klein im de parko de ballo magta", "   "]
    out, scores = translator.translate(texts, return_scores=True)
    assert len(out) == 4 and all(isinstance(t, str) for t in out)
    assert out[1] == "" and out[3] == "" and scores[1] == 0.0
    # Each sentence translates as it would alone, whatever the batching.
    for text, translation in zip(texts, out):
        assert translator.translate(text) == translation
    assert translator.translate(texts, batch_size=1) == out


def test_translate_beam_and_sample(translator):
    texts = ["ein hundo siehta", "de vogo alt de bucho tragta"]
    beam = translator.translate(texts, strategy="beam", num_beams=3)
    sampled = translator.translate(texts, strategy="sample", top_k=5, seed=2)
    assert len(beam) == len(sampled) == 2
    assert translator.translate(texts, strategy="sample", top_k=5, seed=2) == sampled


def test_long_input_is_cut_to_max_length(translator):
    ids = translator.encode(["ein hundo " * 100])
    assert ids.shape[1] == translator.model.max_length
    assert ids[0, -1] == translator.source_tokenizer.end_id
    assert isinstance(translator.translate(["ein hundo " * 100])[0], str)


def test_save_and_load_translate_identically(translator, tmp_path):
    texts = ["ein hundo siehta", "de katzo magta"]
    translator.save(tmp_path / "run")
    loaded = Translator.load(tmp_path / "run")
    assert loaded.translate(texts) == translator.translate(texts)


def test_bad_inputs_have_clear_errors(translator, tmp_path):
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        translator.translate(["ok", 3])
    with pytest.raises(TypeError, match="list of strings"):
        translator.translate(np.array(["a"]))
    with pytest.raises(ValueError, match="batch_size"):
        translator.translate(["a"], batch_size=0)
    other = SubwordTokenizer.train(["a b c d e f g"] * 5, vocabulary_size=20)
    with pytest.raises(ValueError, match="source_tokenizer"):
        Translator(translator.model, other, translator.target_tokenizer)
    with pytest.raises(FileNotFoundError, match="not a training run"):
        Translator.load(tmp_path)
    translator.save(tmp_path / "run")
    (tmp_path / "run" / "model.keras").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a .keras archive"):
        Translator.load(tmp_path / "run")


def test_a_saved_run_holds_no_code_and_loading_runs_none(translator, tmp_path):
    import zipfile

    import keras

    if not translator.model.built:
        translator.model.build(((None, None), (None, None)))
    translator.save(tmp_path / "run")
    with zipfile.ZipFile(tmp_path / "run" / "model.keras") as archive:
        # JSON config and HDF5 weights only: nothing pickled.
        assert sorted(archive.namelist()) == [
            "config.json", "metadata.json", "model.weights.h5"
        ]
    for side in ("source_tokenizer", "target_tokenizer"):
        assert sorted(p.name for p in (tmp_path / "run" / side).iterdir()) == [
            "sentencepiece.model", "tokenizer.json"
        ]
    # A model.keras carrying Python code (a Lambda layer's bytecode) is
    # refused by safe mode instead of being run.
    code = keras.Sequential([keras.Input((1,)), keras.layers.Lambda(lambda x: x * 2.0)])
    code.save(tmp_path / "run" / "model.keras")
    with pytest.raises(ValueError, match="could not be loaded.*safe_mode"):
        Translator.load(tmp_path / "run")


# -- the keras-hub task ------------------------------------------------------


def test_translator_is_a_keras_hub_seq2seq_lm_with_backbone_and_preprocessor(translator):
    import keras_hub

    assert issubclass(Translator, keras_hub.models.Seq2SeqLM)
    assert isinstance(translator.backbone, ks.Transformer)
    assert isinstance(translator.preprocessor, ks.TranslatorPreprocessor)
    assert isinstance(translator.preprocessor, keras_hub.models.Seq2SeqLMPreprocessor)
    assert translator.model is translator.backbone  # the earlier name


def test_generate_takes_strings_and_returns_strings(translator):
    texts = ["ein hundo siehta", "", "de katzo magta"]
    translator.compile(sampler="greedy")
    out = translator.generate(texts)
    assert out == translator.translate(texts)
    assert isinstance(translator.generate(texts[0]), str)
    assert translator.generate(texts[0]) == out[0]
    # Token ids in: voted ids out, as `Transformer.generate`.
    ids = translator.encode(texts[:1])
    np.testing.assert_array_equal(
        translator.generate({"source_ids": ids}), translator.model.generate(ids)
    )


@pytest.mark.parametrize(
    "sampler, options",
    [
        ("greedy", {"strategy": "greedy"}),
        (ks.GreedySampler(), {"strategy": "greedy"}),
        ("beam", {"strategy": "beam"}),
        (
            ks.BeamSampler(num_beams=3, length_penalty=1.0),
            {"strategy": "beam", "num_beams": 3, "length_penalty": 1.0},
        ),
        (
            ks.RandomSampler(top_k=5, seed=2),
            {"strategy": "sample", "top_k": 5, "seed": 2},
        ),
        (
            ks.RandomSampler(top_p=0.8, temperature=0.7, seed=4),
            {"strategy": "sample", "top_p": 0.8, "temperature": 0.7, "seed": 4},
        ),
    ],
)
def test_compile_sampler_picks_the_strategy(translator, sampler, options):
    texts = ["ein hundo siehta", "de vogo alt de bucho tragta"]
    translator.compile(sampler=sampler)
    assert translator.generate(texts) == translator.translate(texts, **options)


def test_samplers_differ_and_seeded_sampling_repeats(translator):
    texts = ["de vogo alt de bucho tragta", "ein hundo siehta"]
    translator.compile(sampler=ks.RandomSampler(top_k=30, temperature=5.0, seed=1))
    first = translator.generate(texts)
    assert translator.generate(texts) == first
    translator.compile(sampler=ks.RandomSampler(top_k=30, temperature=5.0, seed=2))
    assert translator.generate(texts) != first


def test_compile_rejects_samplers_it_cannot_run(translator):
    import keras_hub

    with pytest.raises(ValueError, match="sampler"):
        translator.compile(sampler="contrastive")
    with pytest.raises(ValueError, match="per-row limits"):
        translator.compile(sampler=keras_hub.samplers.BeamSampler(num_beams=2))
    with pytest.raises(ValueError, match="num_beams"):
        translator.compile(sampler=ks.BeamSampler(num_beams=10_000))


def test_a_sampler_round_trips_its_config():
    import keras

    for sampler in (
        ks.GreedySampler(),
        ks.BeamSampler(num_beams=5, length_penalty=1.0),
        ks.RandomSampler(top_k=3, top_p=0.5, temperature=0.9, seed=7),
    ):
        clone = keras.saving.deserialize_keras_object(
            keras.saving.serialize_keras_object(sampler)
        )
        assert type(clone) is type(sampler)
        assert clone.get_config() == sampler.get_config()


def test_fit_trains_on_string_pairs():
    import keras
    import tensorflow as tf

    from keras_stageshow.datasets.synthetic import stage_language_pairs

    translator = stage_translator()
    source, target = stage_language_pairs(128, seed=1)
    pairs = tf.data.Dataset.from_tensor_slices((source, target)).batch(32)
    translator.compile(warmup_steps=4, learning_rate_scale=2.0)
    translator.backbone.build(((None, None), (None, None)))
    before = [keras.ops.convert_to_numpy(w).copy() for w in translator.backbone.weights]
    history = translator.fit(pairs, epochs=3, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < losses[0]
    after = translator.backbone.weights
    assert any(
        not np.allclose(b, keras.ops.convert_to_numpy(a)) for b, a in zip(before, after)
    )
    # Python lists work too (keras-hub batches them).
    translator.fit(x=source[:40], y=target[:40], batch_size=20, epochs=1, verbose=0)


def test_fit_takes_length_batched_token_datasets():
    """Already tokenized batches (`make_translation_dataset`: length
    batching, bounded shapes) pass through the preprocessor unchanged."""
    from keras_stageshow.datasets import make_translation_dataset
    from keras_stageshow.datasets.synthetic import stage_language_pairs

    translator = stage_translator()
    source, target = stage_language_pairs(96, seed=2)
    dataset = make_translation_dataset(
        source, target, translator.source_tokenizer, translator.target_tokenizer,
        max_length=translator.model.max_length, tokens_per_batch=512,
        bounded_shapes=True, max_shapes=4,
    )
    translator.compile()
    history = translator.fit(dataset, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_the_preprocessor_owns_truncation_and_the_end_token(translator):
    preprocessor = translator.preprocessor
    max_length = translator.model.max_length
    x, y = preprocessor(["ein hundo " * 100], ["de katzo " * 100])
    source, target_in = x["source_ids"].numpy(), x["target_ids"].numpy()
    assert source.shape[1] == max_length and source[0, -1] == 3  # end
    assert target_in.shape[1] == max_length and target_in[0, 0] == 2  # start
    assert y.shape[1] == max_length
    # The decoder input is the labels shifted right by one.
    np.testing.assert_array_equal(target_in[:, 1:], y.numpy()[:, :-1])
    short_x, short_y = preprocessor(["ein hundo"], ["de katzo"])
    assert short_y.numpy()[0, -1] == 3  # an uncut target keeps its end token


def test_preprocessor_round_trips_its_config(translator):
    import keras

    preprocessor = translator.preprocessor
    clone = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(preprocessor)
    )
    assert isinstance(clone, ks.TranslatorPreprocessor)
    assert clone.get_config() == preprocessor.get_config()
    assert clone.max_length == preprocessor.max_length
    # The SentencePiece models travel as assets (a preset's or a .keras
    # file's), as for every keras-hub tokenizer, not in the config.
    for side in ("source_tokenizer", "target_tokenizer"):
        tokenizer = getattr(clone, side)
        assert isinstance(tokenizer, SubwordTokenizer) and tokenizer.proto is None


def test_summary_and_a_keras_file_round_trip(translator, tmp_path):
    import keras

    lines = []
    translator.summary(print_fn=lines.append)
    assert any("Transformer" in line or "transformer" in line for line in lines)
    translator.save(tmp_path / "translator.keras")
    loaded = keras.saving.load_model(tmp_path / "translator.keras")
    assert isinstance(loaded, Translator)
    texts = ["ein hundo siehta", "de katzo magta"]
    assert loaded.translate(texts) == translator.translate(texts)


def test_quantize_goes_through_the_backbone_and_clears_the_generate_function():
    """Keras's `Model.quantize` of the task would quantize the backbone's
    layers itself, the vote's tied embeddings included; `Translator.quantize`
    is the backbone's, and the next `generate` decodes with the int8
    kernels (as a translator quantized before it ever decoded)."""
    translator = stage_translator(num_layers=1)
    translator.backbone.build(((None, None), (None, None)))
    fresh = Translator(
        ks.Transformer.from_config(translator.backbone.get_config()),
        translator.preprocessor,
    )
    fresh.backbone.set_weights(translator.backbone.get_weights())
    texts = ["ein hundo siehta", "de katzo klein magta"]
    translator.generate(texts)
    assert translator.generate_function is not None
    translator.quantize("int8")
    fresh.quantize("int8")
    assert translator.generate_function is None
    backbone = translator.backbone
    assert backbone.voting.token_embedding.dtype_policy.quantization_mode is None
    assert backbone.voting.token_embedding.embeddings.dtype == "float32"
    assert {v.dtype for v in backbone.variables if v.path.endswith("/kernel")} == {"int8"}
    got, scores = translator.generate(texts, return_scores=True)
    expected, expected_scores = fresh.generate(texts, return_scores=True)
    assert got == expected
    np.testing.assert_array_equal(scores, expected_scores)
