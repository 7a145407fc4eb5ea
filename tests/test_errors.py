"""Bad input gets a clear error that names the argument and the fix."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_transformer

import keras_stageshow as ks

IDS = np.array([[5, 6, 7]], "int32")


def test_d_model_not_divisible_by_num_heads():
    with pytest.raises(ValueError, match=r"`d_model` \(510\) must be divisible by `num_heads` \(8\)"):
        ks.Transformer(100, 100, d_model=510, num_heads=8)
    with pytest.raises(ValueError, match="num_heads"):
        ks.StageShow(100, d_model=30, num_heads=4)
    with pytest.raises(ValueError, match="num_heads"):
        ks.PracticeRound(num_heads=3, d_ff=8)(np.ones((1, 2, 16), "float32"))


def test_non_integer_token_ids():
    model = tiny_transformer()
    with pytest.raises(ValueError, match=r"`source_ids` must hold integer token ids.*cast"):
        model((IDS.astype("float32"), IDS))
    with pytest.raises(ValueError, match=r"`target_ids` must hold integer"):
        model((IDS, IDS.astype("float32")))


@pytest.mark.parametrize("bad", [30, 1000, -1])
def test_token_ids_outside_the_vocabulary(bad):
    model = tiny_transformer(vocab=30)
    ids = IDS.copy()
    ids[0, 1] = bad
    with pytest.raises(ValueError, match=rf"`source_ids` contains token id {bad}.*\[0, 30\)"):
        model((ids, IDS))
    with pytest.raises(ValueError, match=r"`target_ids` contains token id"):
        model((IDS, ids))


def test_token_ids_outside_the_vocabulary_inside_tf_function():
    model = tiny_transformer(vocab=30)
    model((IDS, IDS))
    call = tf.function(lambda s, t: model((s, t)))
    with pytest.raises(tf.errors.InvalidArgumentError, match="source_ids.*vocabulary"):
        call(tf.constant([[5, 99]]), tf.constant([[5, 6]]))


def test_sequences_longer_than_max_length():
    model = tiny_transformer(max_length=8)
    long = np.full((1, 9), 5, "int32")
    with pytest.raises(ValueError, match=r"`source_ids` has sequence length 9.*max_length=8.*Truncate"):
        model((long, IDS))
    with pytest.raises(ValueError, match=r"`target_ids` has sequence length 9"):
        model((IDS, long))


@pytest.mark.parametrize("shape", [(3,), (1, 3, 1)])
def test_inputs_that_are_not_rank_2(shape):
    model = tiny_transformer()
    bad = np.full(shape, 5, "int32")
    with pytest.raises(ValueError, match=r"`source_ids` must be a rank-2 tensor"):
        model((bad, IDS))
    with pytest.raises(ValueError, match=r"`target_ids` must be a rank-2 tensor"):
        model((IDS, bad))


def test_one_tensor_instead_of_a_pair():
    model = tiny_transformer()
    with pytest.raises(ValueError, match=r"inputs=\(source_ids, target_ids\)"):
        model(IDS)


def test_empty_batch():
    model = tiny_transformer()
    empty = np.zeros((0, 3), "int32")
    with pytest.raises(ValueError, match="`source_ids` is empty"):
        model((empty, IDS))


def test_layer_with_wrong_width():
    round_ = ks.PracticeRound(num_heads=2, d_ff=8)
    round_(np.ones((1, 2, 16), "float32"))
    with pytest.raises(ValueError, match=r"last dimension of `x` must be 16"):
        round_(np.ones((1, 2, 8), "float32"))


def test_layer_with_wrong_rank():
    with pytest.raises(ValueError, match=r"`x` must be a rank-3 tensor"):
        ks.CrewDiscussion(d_ff=8)(np.ones((2, 16), "float32"))
    with pytest.raises(ValueError, match=r"`token_ids` must be a rank-2 tensor"):
        ks.Preprocess(10, 8)(np.array([1, 2, 3]))


def test_bad_hyperparameters():
    with pytest.raises(ValueError, match="dropout_rate"):
        ks.Adjust(dropout_rate=1.5)
    with pytest.raises(ValueError, match="num_layers"):
        ks.Transformer(10, 10, num_layers=0)
    with pytest.raises(ValueError, match="label_smoothing"):
        ks.MaskedSparseCategoricalCrossentropy(label_smoothing=1.0)


def test_generate_arguments():
    model = tiny_transformer(max_length=16)
    with pytest.raises(ValueError, match="max_new_tokens"):
        model.generate(IDS, max_new_tokens=100)
    with pytest.raises(ValueError, match="end_id"):
        model.generate(IDS, end_id=500)


H3 = np.ones((1, 3, 16), "float32")
H2 = np.ones((3, 16), "float32")
INT_H3 = np.ones((1, 3, 16), "int32")

# Every public layer: (make, call arguments of the wrong rank, call arguments
# of the wrong dtype, the argument the errors must name).
LAYERS = {
    "Preprocess": (lambda: ks.Preprocess(10, 16), (H3,), (IDS.astype("float32"),), "token_ids"),
    "Rehearsal": (lambda: ks.Rehearsal(num_heads=2, key_dim=8), (H2, H2), (INT_H3, INT_H3), "query"),
    "Adjust": (lambda: ks.Adjust(), (H2, H2), (INT_H3, INT_H3), "inputs"),
    "CrewDiscussion": (lambda: ks.CrewDiscussion(d_ff=8), (H2,), (INT_H3,), "x"),
    "AssessmentDiscussion": (lambda: ks.AssessmentDiscussion(d_ff=8), (H2,), (INT_H3,), "x"),
    "PracticeRound": (lambda: ks.PracticeRound(num_heads=2, d_ff=8), (H2,), (INT_H3,), "x"),
    "StageShow": (
        lambda: ks.StageShow(10, num_layers=1, d_model=16, num_heads=2, d_ff=8),
        (H3,), (IDS.astype("float32"),), "token_ids",
    ),
    "AskQuestions": (lambda: ks.AskQuestions(num_heads=2), (H2,), (INT_H3,), "target"),
    "WatchShow": (lambda: ks.WatchShow(num_heads=2), (H2, H3), (INT_H3, H3), "questions"),
    "AssessmentRound": (
        lambda: ks.AssessmentRound(num_heads=2, d_ff=8), (H2, H3), (INT_H3, H3), "target"
    ),
    "OscarAssessment": (
        lambda: ks.OscarAssessment(10, num_layers=1, d_model=16, num_heads=2, d_ff=8),
        (H3, H3), (IDS.astype("float32"), H3), "token_ids",
    ),
    "Voting": (lambda: ks.Voting(10), (H2,), (INT_H3,), "dec_output"),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_every_public_layer_rejects_wrong_rank_and_dtype(name):
    make, wrong_rank, wrong_dtype, argument = LAYERS[name]
    with pytest.raises(ValueError, match=rf"rank-\d.*`?{argument}`?|`{argument}` must be a rank"):
        make()(*wrong_rank)
    with pytest.raises(ValueError, match=rf"`{argument}` must hold (floating-point|integer)"):
        make()(*wrong_dtype)


def test_loss_rejects_labels_outside_the_vocabulary():
    loss = ks.MaskedSparseCategoricalCrossentropy(label_smoothing=0.1)
    with pytest.raises(ValueError, match="y_true.*outside the vocabulary"):
        loss(np.array([[7, 0]]), np.zeros((1, 2, 5), "float32"))


# -- invalid UTF-8: replaced by U+FFFD, never an error ------------------------


def test_decode_utf8_replaces_invalid_bytes_in_bytes_and_str():
    from keras_stageshow.utf8 import decode_utf8

    assert decode_utf8(b"caf\xc3\xa9 \xff!") == "café \ufffd!"
    assert decode_utf8("café") == "café"
    # What Python's stdin and sys.argv make of an undecodable byte under a
    # C locale (surrogateescape), and a lone surrogate from elsewhere.
    assert decode_utf8("a \udcff b") == "a \ufffd b"
    assert "\ud800" not in decode_utf8("x\ud800") and decode_utf8("x\ud800")[0] == "x"
    with pytest.raises(TypeError, match="string or bytes"):
        decode_utf8(3)


@pytest.mark.tf_only  # TensorFlow's unicode_transcode
def test_python_and_the_graph_replace_invalid_utf8_alike():
    from keras_stageshow.utf8 import decode_utf8
    from keras_stageshow.utf8 import valid_utf8

    rng = np.random.default_rng(0)
    pieces = [bytes([b]) for b in range(256)] + ["é".encode(), "日".encode(), "🙂".encode()]
    samples = [
        b"".join(pieces[i] for i in rng.integers(0, len(pieces), rng.integers(0, 12)))
        for _ in range(20000)
    ]
    graph = valid_utf8(tf.constant(samples)).numpy().tolist()
    python = [decode_utf8(s).encode("utf-8") for s in samples]
    assert graph == python
    valid = [s for s in samples if s == decode_utf8(s).encode("utf-8")]
    assert len(valid) > 1000  # valid strings come back byte for byte


def test_a_file_with_invalid_utf8_keeps_every_line_and_names_the_bad_ones(
    tmp_path, caplog
):
    import gzip

    from keras_stageshow.datasets import load_parallel_files
    from keras_stageshow.datasets.parallel_files import read_lines

    (tmp_path / "a.de").write_bytes(b"eins\nzw\xffei\r\ndrei\n\xc3(vier\n")
    with gzip.open(tmp_path / "a.en.gz", "wb") as f:
        f.write(b"one\ntwo\nthree\nfour\n")
    with caplog.at_level("WARNING", logger="keras_stageshow"):
        source, target = load_parallel_files(tmp_path / "a.de", tmp_path / "a.en.gz")
    assert source == ["eins", "zw\ufffdei", "drei", "\ufffd(vier"]
    assert target == ["one", "two", "three", "four"]
    assert "a.de: invalid UTF-8 bytes in 2 line(s) (line 2, 4)" in caplog.text
    # A binary file is still refused (a gzipped file without .gz).
    (tmp_path / "b.de").write_bytes(gzip.compress(b"eins\n"))
    with pytest.raises(ValueError, match=r"`path`: .*b\.de.* NUL bytes.*\.gz"):
        read_lines(tmp_path / "b.de")


@pytest.mark.tf_only  # tokenizers
def test_translator_and_tokenizer_accept_bytes_and_invalid_utf8():
    from conftest import stage_translator

    translator = stage_translator()
    texts = ["ein hundo siehta", b"ein hundo siehta", b"ein \xff hundo", "ein \udcff hundo"]
    got = translator.translate(texts, max_new_tokens=4, jit_compile=False)
    assert got[0] == got[1]
    assert got[2] == got[3] == translator.translate(
        ["ein \ufffd hundo"], max_new_tokens=4, jit_compile=False
    )[0]
    assert translator.translate(b"ein hundo", max_new_tokens=4, jit_compile=False) == (
        translator.translate("ein hundo", max_new_tokens=4, jit_compile=False)
    )
    tok = translator.source_tokenizer
    expected = tok.tokenize(["ein \ufffd"]).to_list()
    assert tok.tokenize([b"ein \xff"]).to_list() == expected
    assert tok.tokenize(tf.constant([b"ein \xff"])).to_list() == expected
    with pytest.raises(TypeError, match=r"`texts\[1\]` must be a string \(str or UTF-8 bytes\)"):
        translator.translate(["ok", 3])
