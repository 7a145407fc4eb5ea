"""The script: SentencePiece subword tokenizers with the reserved ids."""

import io
import unicodedata

import numpy as np
import pytest
import tensorflow as tf

from keras_stageshow import SubwordTokenizer
from keras_stageshow.datasets import load_multi30k

pytestmark = pytest.mark.tf_only  # the tokenizers are tensorflow-text ops

CORPUS = [
    "Ein Mädchen läuft über die Wiese.",
    "Zwei Hunde spielen im Schnee.",
    "A girl runs across the meadow.",
    "Two dogs play in the snow.",
    "Ein Mann fährt Fahrrad, und eine Frau schaut zu!",
] * 20


@pytest.fixture(scope="module", params=["data_dir", "multi30k_dir"])
def multi30k_tokenizer(request):
    """Trained on the generated captions and, where they are, on the real
    Multi30k validation files."""
    de, en = load_multi30k("val", data_dir=request.getfixturevalue(request.param))
    return SubwordTokenizer.train([de, en], vocabulary_size=1000), de, en


def test_reserved_ids_are_pad_unk_start_end():
    tok = SubwordTokenizer.train(CORPUS, vocabulary_size=80)
    assert tok.get_vocabulary()[:4] == ["<pad>", "<unk>", "<s>", "</s>"]
    assert (tok.pad_id, tok.start_id, tok.end_id) == (0, 2, 3)
    ids = tok.tokenize(CORPUS[:5]).flat_values.numpy()
    assert ids.min() > 3  # no reserved id for ordinary text


def test_detokenize_gives_back_the_text_up_to_nfkc_and_spacing(multi30k_tokenizer):
    tok, de, en = multi30k_tokenizer
    for texts in (de, en):
        # SentencePiece applies NFKC (a no-break space becomes a space) and
        # collapses runs of whitespace; everything else comes back.
        expected = [" ".join(unicodedata.normalize("NFKC", t).split()) for t in texts]
        assert tok.detokenize_to_strings(tok.tokenize(texts)) == expected


def test_detokenize_drops_specials_and_stops_at_end():
    tok = SubwordTokenizer.train(CORPUS, vocabulary_size=80)
    ids = tok.tokenize("Two dogs play").numpy().tolist()
    dense = np.array([[2] + ids + [3] + ids + [0, 0]])
    assert tok.detokenize_to_strings(dense) == ["Two dogs play"]


def test_lowercase_and_strip_accents_options():
    tok = SubwordTokenizer.train(
        CORPUS, vocabulary_size=80, lowercase=True, strip_accents=True
    )
    text = tok.detokenize_to_strings(tok.tokenize(["Ein MÄDCHEN läuft"]))
    assert text == ["ein madchen lauft"]


def test_save_and_load_give_the_same_ids(tmp_path):
    tok = SubwordTokenizer.train(CORPUS, vocabulary_size=80, lowercase=True)
    tok.save(tmp_path / "tok")
    loaded = SubwordTokenizer.load(tmp_path / "tok")
    assert loaded.lowercase and loaded.vocabulary_size() == tok.vocabulary_size()
    np.testing.assert_array_equal(
        loaded.tokenize(CORPUS).to_tensor().numpy(),
        tok.tokenize(CORPUS).to_tensor().numpy(),
    )
    # Only the two files; no temporary file is left behind.
    assert sorted(p.name for p in (tmp_path / "tok").iterdir()) == [
        "sentencepiece.model", "tokenizer.json",
    ]


def test_tokenizer_runs_inside_tf_data():
    tok = SubwordTokenizer.train(CORPUS, vocabulary_size=80)
    ds = tf.data.Dataset.from_tensor_slices(CORPUS[:4]).map(tok.tokenize)
    for text, ids in zip(CORPUS[:4], ds):
        assert tok.detokenize_to_strings(ids[tf.newaxis]) == [text]


def test_load_reports_missing_empty_and_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        SubwordTokenizer.load(tmp_path / "nowhere")
    tok = SubwordTokenizer.train(CORPUS, vocabulary_size=80)
    tok.save(tmp_path / "tok")
    (tmp_path / "tok" / "sentencepiece.model").write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        SubwordTokenizer.load(tmp_path / "tok")
    (tmp_path / "tok" / "sentencepiece.model").unlink()
    with pytest.raises(FileNotFoundError, match="missing"):
        SubwordTokenizer.load(tmp_path / "tok")
    (tmp_path / "tok" / "tokenizer.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        SubwordTokenizer.load(tmp_path / "tok")


def test_a_model_without_the_reserved_tokens_is_rejected():
    import sentencepiece

    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS), model_writer=model, vocab_size=40,
        minloglevel=2,
    )  # sentencepiece's own layout: unk 0, bos 1, eos 2, no padding
    with pytest.raises(ValueError, match="reserved tokens"):
        SubwordTokenizer(model.getvalue())
    with pytest.raises(ValueError, match="SentencePiece"):
        SubwordTokenizer(b"not a model")


def test_train_rejects_bad_corpora():
    with pytest.raises(ValueError, match="no text"):
        SubwordTokenizer.train(["", "  "], vocabulary_size=50)
    with pytest.raises(TypeError, match="list of sentences"):
        SubwordTokenizer.train("one string", vocabulary_size=50)
    with pytest.raises(TypeError, match="texts"):
        SubwordTokenizer.train(CORPUS, vocabulary_size=80).tokenize([1, 2])


def test_tokenizer_survives_a_global_seed_set_after_it_was_made():
    # keras-hub makes its tensorflow-text op once; a global seed set later
    # drops TensorFlow's kernel cache, and the op's model with it.
    import keras

    tok = SubwordTokenizer.train(CORPUS, vocabulary_size=80)
    expected = tok.tokenize(CORPUS[:4]).to_list()
    keras.utils.set_random_seed(7)
    ds = tf.data.Dataset.from_tensor_slices(CORPUS[:4]).batch(4).map(tok.tokenize)
    assert next(iter(ds)).to_list() == expected
    assert tok.tokenize(CORPUS[:4]).to_list() == expected


def test_eager_and_graph_tokenizers_agree(multi30k_tokenizer):
    tok, de, en = multi30k_tokenizer
    texts = de[:200] + en[:200]
    graph = tf.function(tok.tokenize)(tf.constant(texts))
    assert graph.to_list() == tok.tokenize(texts).to_list()
    ids = tok.tokenize(texts)
    assert (
        tf.function(tok.detokenize)(ids).numpy().tolist()
        == tok.detokenize(ids).numpy().tolist()
    )


def test_tokenizer_is_a_keras_hub_layer_that_round_trips_in_a_keras_file(tmp_path):
    import keras
    import keras_hub

    tok = SubwordTokenizer.train(CORPUS, vocabulary_size=80, strip_accents=True)
    assert isinstance(tok, keras_hub.tokenizers.SentencePieceTokenizer)
    inputs = keras.Input(shape=(), dtype="string")
    model = keras.Model(inputs, tok(inputs))
    path = str(tmp_path / "tok.keras")
    model.save(path)
    loaded = keras.saving.load_model(path).layers[-1]
    assert isinstance(loaded, SubwordTokenizer) and loaded.strip_accents
    assert loaded.tokenize(CORPUS).to_list() == tok.tokenize(CORPUS).to_list()
