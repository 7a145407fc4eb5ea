"""int8 where it pays: which of a `Transformer`'s layers `quantize` touches
(never the embeddings the vote is tied to: `without_layers`) and the
quantized backbone the SavedModel export serves
(`export_for_serving(quantize="int8")`: `quantized_for_export`)."""

import re
import warnings

# What `export_for_serving(quantize=...)` offers besides None (float).
EXPORT_QUANTIZE_MODES = ("int8",)


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


def quantized_for_export(backbone, quantize, callers_backbone=None):
    """The backbone the export serves, `quantize`d.

    Args:
        backbone: a built `Transformer` (already in the export's dtype).
        quantize: None (the backbone as it is) or `"int8"`
            (`Transformer.quantize`: Dense, EinsumDense and an untied
            source embedding int8, the vote's tied embeddings float).
        callers_backbone: the caller's backbone. When `backbone` is it
            (the export's dtype did not change it), a copy is quantized,
            so the caller's model stays as it is; a backbone the export
            made (loaded, or cloned to another dtype) is quantized in
            place.

    Returns the backbone to export.
    """
    if quantize is None:
        return backbone
    if not isinstance(quantize, str) or quantize not in EXPORT_QUANTIZE_MODES:
        raise ValueError(
            '`quantize` must be "int8" (an int8 graph) or None (float); '
            f"received {quantize!r}."
        )
    if backbone is callers_backbone:
        # `Transformer.from_config` returns it built.
        copy = backbone.__class__.from_config(backbone.get_config())
        copy.set_weights(backbone.get_weights())
        backbone = copy
    with warnings.catch_warnings():
        # One per LayerNormalization and Dropout: nothing to quantize there.
        warnings.filterwarnings(
            "ignore", r".*does not have a `quantize` method", UserWarning
        )
        backbone.quantize(quantize)
    return backbone
