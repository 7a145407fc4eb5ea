"""Pictures of attention: what the show rehearsed, what the assessment asked
itself, and what it watched in the show to answer.

`plot_attention` draws one sentence pair's attention weights, for one round
(layer), one heatmap per head, with the subword tokens on the axes;
`plot_attention_files` saves one such picture per sentence. Both use
`matplotlib.figure.Figure` directly (not `pyplot`), so they change no global
matplotlib state and they work on machines without a display.
"""

import os

import numpy as np

from keras_stageshow.files import write_atomically
from keras_stageshow.layers.utils import is_int

KINDS = {
    # name in `Transformer.attention_scores`: (title, rows, columns)
    "rehearsal": (
        "Rehearsal (encoder self-attention)",
        "source",
        "source",
    ),
    "ask_questions": (
        "Ask questions (decoder masked self-attention)",
        "voted",
        "rumours",
    ),
    "watch_show": (
        "Watch the show (cross-attention)",
        "voted",
        "source",
    ),
}


def plot_attention(
    translator,
    source_text,
    translation=None,
    round_index=-1,
    kinds=("rehearsal", "ask_questions", "watch_show"),
    heads=None,
    path=None,
    strategy="greedy",
    **generate_options,
):
    """Attention heatmaps for one sentence and its translation.

    One row of heatmaps per kind of attention, one column per head:

    - `"rehearsal"`: the show's own rehearsal (encoder self-attention),
      source tokens on both axes;
    - `"ask_questions"`: the questions the assessment asks of itself
      (decoder masked self-attention); each row is the step that voted the
      token on the left, each column a rumour it could look back at (the
      start token, then the tokens voted so far);
    - `"watch_show"`: what the assessment watched in the show to answer
      them (cross-attention), voted tokens down, source tokens across.

    Args:
        translator: a `Translator` (a model with its tokenizers).
        source_text: str, the sentence to translate.
        translation: str, the translation to explain (its tokens are fed to
            the assessment). By default the model translates the sentence
            and the tokens it voted are drawn (`strategy` and
            `**generate_options` are passed to `Transformer.generate`).
        round_index: int, which round (layer) to draw; negative counts from
            the last, as in Python.
        kinds: which of `"rehearsal"`, `"ask_questions"`, `"watch_show"`.
        heads: list of head indices to draw (default: all).
        path: str, also save the figure there (a PNG, or any format
            matplotlib knows from the suffix), written atomically.

    Returns:
        A `matplotlib.figure.Figure` (shown by Jupyter when it is a cell's
        value).

    Example:
    >>> fig = plot_attention(translator, "Ein Hund rennt.", path="attention.png")
    """
    from matplotlib.figure import Figure

    model = translator.model
    kinds = _check_kinds(kinds)
    num_rounds, num_heads = model.num_layers, model.num_heads
    if not is_int(round_index) or not -num_rounds <= round_index < num_rounds:
        raise ValueError(
            f"`round_index` must be an int in [-{num_rounds}, {num_rounds}) "
            f"(the model has {num_rounds} rounds); received {round_index!r}."
        )
    heads = list(range(num_heads)) if heads is None else list(heads)
    if not heads or not all(is_int(h) and 0 <= h < num_heads for h in heads):
        raise ValueError(
            f"`heads` must be head indices in [0, {num_heads}); received {heads!r}."
        )
    data = attention_for_pair(
        translator, source_text, translation, strategy, **generate_options
    )
    labels = {
        "source": data["source_tokens"],
        "voted": data["voted_tokens"],
        "rumours": data["rumour_tokens"],
    }
    longest = max(len(labels["source"]), len(labels["voted"]))
    cell = max(2.2, 0.22 * longest)
    fig = Figure(
        figsize=(cell * len(heads) + 1.0, (cell + 0.8) * len(kinds)),
        layout="constrained",
    )
    axes = fig.subplots(len(kinds), len(heads), squeeze=False)
    round_number = round_index % num_rounds
    for row, kind in enumerate(kinds):
        title, rows, columns = KINDS[kind]
        # (heads, rows, columns) for the one sentence.
        weights = np.asarray(data["scores"][kind][round_number][0], "float32")
        for column, head in enumerate(heads):
            ax = axes[row, column]
            # One scale for every head: weights are probabilities.
            image = ax.imshow(
                weights[head], cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto"
            )
            ax.set_xticks(range(len(labels[columns])))
            ax.set_xticklabels(labels[columns], rotation=90, fontsize=7)
            ax.set_yticks(range(len(labels[rows])))
            ax.set_yticklabels(labels[rows], fontsize=7)
            ax.set_title(f"head {head}", fontsize=8)
            if column == 0:
                ax.set_ylabel(title, fontsize=8)
        fig.colorbar(image, ax=list(axes[row]), shrink=0.8)
    fig.suptitle(
        f"Round {round_number + 1} of {num_rounds}: {source_text!r} -> "
        f"{data['translation']!r}",
        fontsize=9,
    )
    if path is not None:
        path = os.fspath(path)
        suffix = os.path.splitext(path)[1] or ".png"
        write_atomically(path, lambda tmp: fig.savefig(tmp, dpi=110), suffix=suffix)
    return fig


def plot_attention_files(translator, texts, path, round_index=-1, **generate_options):
    """Draws each non-blank sentence of `texts` as `plot_attention` does
    (the model translates it again, so the picture shows the tokens it
    voted) and saves it: at `path` when `texts` holds one sentence, else at
    `STEM-1.SUFFIX`, `STEM-2.SUFFIX`, ... by the sentence's position.
    Returns the paths written.

    Example:
    >>> plot_attention_files(translator, ["Ein Hund.", ""], "att.png")
    ['att-1.png']
    """
    path = os.fspath(path)
    stem, suffix = os.path.splitext(path)
    written = []
    for i, text in enumerate(texts):
        if not text.strip():
            continue
        target = path if len(texts) == 1 else f"{stem}-{i + 1}{suffix}"
        plot_attention(
            translator, text, round_index=round_index, path=target,
            **generate_options,
        )
        written.append(target)
    return written


def attention_for_pair(
    translator, source_text, translation=None, strategy="greedy", **options
):
    """The attention weights and token labels behind `plot_attention`.

    Without `translation`, the model translates the sentence and the
    weights are those of the tokens it voted; with one, the weights are
    those of that text's tokens fed to the assessment (teacher forcing).

    Returns a dict: `"translation"` (str), `"source_tokens"`,
    `"rumour_tokens"` (the decoder's inputs: start token, then the voted
    tokens), `"voted_tokens"` (its outputs: the voted tokens, then the end
    token), and `"scores"` (`Transformer.attention_scores`, numpy arrays).
    """
    if not isinstance(source_text, str) or not source_text.strip():
        raise ValueError(
            "`source_text` must be a non-empty string (a sentence to "
            f"translate); received {source_text!r}."
        )
    if translation is not None and not isinstance(translation, str):
        raise TypeError(
            "`translation` must be a string or None; received "
            f"{type(translation).__name__}."
        )
    model = translator.model
    target_tokenizer = translator.target_tokenizer
    start, end = target_tokenizer.start_id, target_tokenizer.end_id
    source_ids = translator.encode([source_text])
    if translation is None:
        tokens = model.generate(
            source_ids, strategy=strategy, start_id=start, end_id=end, **options
        )[0]
        translation = target_tokenizer.detokenize_to_strings(tokens[None])[0]
        ended = np.flatnonzero(tokens == end)
        voted = tokens[: ended[0] if len(ended) else len(tokens)]
        voted = voted[voted != 0]
    else:
        voted = np.asarray(target_tokenizer.tokenize(translation), "int32")
    voted = voted[: model.max_length - 1]
    rumours = np.concatenate([[start], voted]).astype("int32")
    outputs = np.concatenate([voted, [end]]).astype("int32")
    scores = model.attention_scores((source_ids, rumours[None, :]))
    scores = {k: [np.asarray(s) for s in v] for k, v in scores.items()}

    def pieces(tokenizer, ids):
        return [tokenizer.id_to_token(i) for i in ids]

    return {
        "translation": translation,
        "source_tokens": pieces(translator.source_tokenizer, source_ids[0]),
        "rumour_tokens": pieces(target_tokenizer, rumours),
        "voted_tokens": pieces(target_tokenizer, outputs),
        "scores": scores,
    }


def _check_kinds(kinds):
    if isinstance(kinds, str):
        kinds = (kinds,)
    kinds = tuple(kinds)
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise ValueError(
            f"`kinds` must be some of {list(KINDS)}; received {list(kinds)!r}."
        )
    return kinds
