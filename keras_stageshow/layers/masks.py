"""Attention masks: made from token ids at the model's boundary, combined in
one place.

Masks follow Keras's convention: boolean, `True` = may attend / is a real
token. Padding masks are `(batch, seq_len)`; attention masks are
`(batch, query_len, key_len)` (or broadcastable to it) and get a head axis
only inside attention.

Where masks come from, and which one wins:

1. `Transformer.call` and the decoding core compute the padding masks from
   the ids once (`padding_mask_from_ids`) and pass them down explicitly, as
   `padding_mask` / `target_mask` / `enc_output_mask`.
2. A layer called on its own (in a functional model, say) may instead
   receive Keras's automatic mask of its input (`mask=`, `*_mask=`).
   `resolve_padding_mask` applies the one precedence rule: an explicit mask
   replaces the automatic one for the same input; they are never mixed.
3. `merge_attention_masks` is the one place the kinds of mask meet (an
   explicit attention mask, key padding, query padding, the look-ahead
   mask): they are ANDed, so a position is visible only if every mask that
   was given allows it.
"""

from keras import ops

from keras_stageshow.special_ids import PAD_ID


def padding_mask_from_ids(token_ids):
    """`True` where `token_ids` is a real token. # (batch, seq_len)"""
    return ops.not_equal(token_ids, PAD_ID)


def resolve_padding_mask(explicit, automatic):
    """The padding mask of one input: the explicit one if given, else Keras's
    automatic mask (which may be None)."""
    return automatic if explicit is None else explicit


def causal_mask(query_len, key_len, query_offset=0):
    """Look-ahead mask: query i sees keys 0 .. query_offset + i.

    `query_offset` is the position of the first query, which is the cache
    index during cached decoding. # (1, query_len, key_len)
    """
    query_positions = ops.arange(query_len, dtype="int32") + ops.cast(
        query_offset, "int32"
    )
    key_positions = ops.arange(key_len, dtype="int32")
    mask = ops.greater_equal(
        ops.expand_dims(query_positions, 1), ops.expand_dims(key_positions, 0)
    )
    return ops.expand_dims(mask, 0)


def merge_attention_masks(
    attention_mask=None, key_padding_mask=None, query_padding_mask=None, causal=None
):
    """The attention mask that all given masks allow (a logical AND).

    Args:
        attention_mask: boolean, broadcastable to `(batch, query_len, key_len)`.
        key_padding_mask: boolean `(batch, key_len)`: padded keys are hidden
            from every query.
        query_padding_mask: boolean `(batch, query_len)`: padded queries see
            nothing (their rows come out as zeros).
        causal: boolean `(1, query_len, key_len)` from `causal_mask`.

    Returns a boolean mask broadcastable to `(batch, query_len, key_len)`, or
    None when no mask was given.
    """
    parts = [attention_mask, causal]
    if key_padding_mask is not None:
        # (batch, key_len) -> (batch, 1, key_len)
        parts.append(ops.expand_dims(key_padding_mask, 1))
    if query_padding_mask is not None:
        # (batch, query_len) -> (batch, query_len, 1)
        parts.append(ops.expand_dims(query_padding_mask, -1))
    merged = None
    for mask in parts:
        if mask is None:
            continue
        mask = ops.cast(mask, "bool")
        merged = mask if merged is None else ops.logical_and(merged, mask)
    return merged
