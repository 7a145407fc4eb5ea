"""Which of a `Transformer`'s layers `quantize` touches: never the embeddings
the vote is tied to (`without_layers`).

An int8 SavedModel export is not offered: measured on a default run
(benchmarks/int8_export.py, benchmarks/README.md), Keras's int8 graph was
slower at every batch (one sentence 1.73x the float32 time, batches of 32
0.62x and 0.69x the sentences per second) and 0.69x the size, not half;
BLEU was the same. `translator.quantize("int8")` before `export` still
makes one."""

import re


def without_layers(filters, excluded):
    """Keras's `quantize(filters=...)` with the layers in `excluded` left
    out, as one callable `layer -> bool`.

    Why: Keras's `Model.quantize` also quantizes `keras.layers.Embedding`;
    an int8 Embedding keeps an int8 table whose per-row scales only its own
    call applies, and Keras has no public API to read the table
    dequantized. The vote multiplies by the tied embedding matrix itself
    (`Voting.tied_kernel`), so it would read raw int8 values without their
    scales: the tied embedding must stay float.

    Args:
        filters: the user's filters, with Keras's documented meaning: None
            (every layer), a regex string (`re.search` on the layer's
            name), a list or tuple of regex strings (any matches), or a
            callable `layer -> bool`.
        excluded: layers never quantized, whatever `filters` says.

    Returns a callable for `keras.Model.quantize(filters=...)`.
    """
    valid = isinstance(filters, (str, list, tuple)) or callable(filters)
    if filters is not None and not valid:
        raise ValueError(
            "`filters` must be None, a regex string, a list or tuple of regex "
            f"strings, or a callable layer -> bool; received {type(filters).__name__}."
        )
    excluded = tuple(excluded)

    def chosen(layer):
        if any(layer is kept for kept in excluded):
            return False
        if filters is None:
            return True
        if isinstance(filters, str):
            return bool(re.search(filters, layer.name))
        if isinstance(filters, (list, tuple)):
            return any(re.search(pattern, layer.name) for pattern in filters)
        return bool(filters(layer))

    return chosen
