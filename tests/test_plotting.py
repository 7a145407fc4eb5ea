"""Pictures of attention: the right weights, on the right axes."""

import numpy as np
import pytest

from conftest import stage_translator
from keras_stageshow.plotting import attention_for_pair
from keras_stageshow.plotting import plot_attention
from keras_stageshow.plotting import plot_attention_files

pytestmark = pytest.mark.tf_only  # Translator: the tokenizers


@pytest.fixture(scope="module")
def translator():
    return stage_translator()


def test_attention_for_pair_labels_match_the_weights(translator):
    data = attention_for_pair(translator, "ein hundo siehta", "a dog sees")
    source, rumours, voted = (
        data["source_tokens"], data["rumour_tokens"], data["voted_tokens"]
    )
    assert source[-1] == "</s>" and rumours[0] == "<s>" and voted[-1] == "</s>"
    assert rumours[1:] == voted[:-1]  # each step's input is the previous vote
    rounds = translator.model.num_layers
    for kind, shape in (
        ("rehearsal", (len(source), len(source))),
        ("ask_questions", (len(voted), len(rumours))),
        ("watch_show", (len(voted), len(source))),
    ):
        assert len(data["scores"][kind]) == rounds
        weights = data["scores"][kind][-1]
        assert weights.shape == (1, 2, *shape)
        np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)
    # The assessment cannot look ahead.
    assert np.all(np.triu(data["scores"]["ask_questions"][0][0, 0], k=1) == 0)


def test_plot_attention_draws_every_head_and_saves_a_png(translator, tmp_path):
    path = tmp_path / "attention.png"
    fig = plot_attention(translator, "ein hundo siehta", path=path)
    heatmaps = [ax for ax in fig.axes if ax.get_images() and ax.get_title()]
    assert len(heatmaps) == 3 * 2  # three kinds x two heads
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*"))  # written atomically, nothing left
    fig = plot_attention(
        translator, "ein hundo siehta", "a dog", round_index=0,
        kinds="watch_show", heads=[1],
    )
    (ax,) = [ax for ax in fig.axes if ax.get_images()]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    pieces = translator.target_tokenizer.tokenize("a dog").numpy()
    assert labels[-1] == "</s>" and len(labels) == len(pieces) + 1
    assert "Round 1 of 2" in fig._suptitle.get_text()


def test_without_a_translation_the_voted_tokens_are_drawn(translator):
    text = "ein hundo siehta"
    data = attention_for_pair(translator, text, max_new_tokens=6)
    tokens = translator.model.generate(translator.encode([text]), max_new_tokens=6)[0]
    ended = np.flatnonzero(tokens == 3)
    voted = tokens[: ended[0] if len(ended) else len(tokens)]
    tokenizer = translator.target_tokenizer
    assert data["voted_tokens"] == [tokenizer.id_to_token(i) for i in voted] + ["</s>"]
    assert data["translation"] == tokenizer.detokenize_to_strings(tokens[None])[0]


def test_plot_attention_rejects_bad_arguments(translator):
    with pytest.raises(ValueError, match="round_index"):
        plot_attention(translator, "ein hundo", "a dog", round_index=2)
    with pytest.raises(ValueError, match="heads"):
        plot_attention(translator, "ein hundo", "a dog", heads=[5])
    with pytest.raises(ValueError, match="kinds"):
        plot_attention(translator, "ein hundo", "a dog", kinds=["encoder"])
    with pytest.raises(ValueError, match="source_text"):
        plot_attention(translator, "  ", "a dog")
    with pytest.raises(TypeError, match="translation"):
        plot_attention(translator, "ein hundo", 3)


def test_plot_attention_files_saves_one_picture_per_sentence(translator, tmp_path):
    one = plot_attention_files(translator, ["ein hundo"], tmp_path / "one.png")
    assert one == [str(tmp_path / "one.png")]
    several = plot_attention_files(
        translator, ["ein hundo", " ", "de ballo"], tmp_path / "att.png",
        round_index=0, max_new_tokens=4,
    )
    # Named by the sentence's position; blank sentences are skipped.
    assert several == [str(tmp_path / "att-1.png"), str(tmp_path / "att-3.png")]
    for path in one + several:
        assert open(path, "rb").read(4) == b"\x89PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "att-1.png", "att-3.png", "one.png",
    ]
