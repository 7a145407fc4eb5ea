"""The tf.data pipeline: text pairs -> length-batched `((source, target_in), target_out)`."""

import numpy as np

from keras_stageshow.models.translator_preprocessor import pack_sources
from keras_stageshow.models.translator_preprocessor import pack_targets


def tokenize_pairs(
    source_texts, target_texts, source_tokenizer, target_tokenizer, max_length
):
    """Tokenizes a parallel corpus once, adding the start/end tokens.

    Source: `pieces + [end]`; target: `[start] + pieces + [end]`, so that
    `target_in = target[:-1]` and `target_out = target[1:]`. Both are cut to
    `max_length` tokens (the source keeps its end token; a cut target
    loses it). Returns two ragged int32 tensors.
    """
    if len(source_texts) != len(target_texts):
        raise ValueError(
            f"`source_texts` has {len(source_texts)} sentences but "
            f"`target_texts` has {len(target_texts)}; they must be aligned."
        )
    if not len(source_texts):
        raise ValueError("`source_texts` is empty: there is nothing to train on.")
    if max_length < 2:
        raise ValueError(f"`max_length` must be at least 2; received {max_length}.")
    source = pack_sources(source_tokenizer.tokenize(list(source_texts)), max_length)
    target = pack_targets(target_tokenizer.tokenize(list(target_texts)), max_length)
    return source, target


def length_batches(source_lengths, target_lengths, tokens_per_batch, seed=0):
    """Partitions examples into batches of similar length.

    Examples are sorted by length (ties broken at random, with `seed`) and
    cut greedily so that each batch's padded size, `rows * longest` on the
    source and on the target side, stays within `tokens_per_batch`; the
    paper batches by approximate length the same way (~25k tokens a batch).

    Returns a list of index arrays, one per batch.
    """
    source_lengths = np.asarray(source_lengths)
    target_lengths = np.asarray(target_lengths)
    rng = np.random.default_rng(seed)
    order = np.lexsort(
        (
            rng.random(len(source_lengths)),
            target_lengths,
            source_lengths,
            np.maximum(source_lengths, target_lengths),
        )
    )
    batches, current, longest_s, longest_t = [], [], 0, 0
    for index in order:
        s, t = int(source_lengths[index]), int(target_lengths[index])
        new_s, new_t = max(longest_s, s), max(longest_t, t)
        if current and (len(current) + 1) * max(new_s, new_t) > tokens_per_batch:
            batches.append(np.array(current))
            current, new_s, new_t = [], s, t
        current.append(index)
        longest_s, longest_t = new_s, new_t
    if current:
        batches.append(np.array(current))
    return batches


def bounded_batches(
    source_lengths, target_lengths, tokens_per_batch, max_shapes=16, seed=0
):
    """Partitions examples into batches of at most `max_shapes` shapes.

    For XLA, which compiles a program per input shape. Every distinct
    `(source_len, target_len)` pair starts as its own cell (no padding);
    the two cells whose merge into one cell of their larger lengths adds
    the fewest padding tokens are merged, again and again, until at most
    `max_shapes` cells remain (agglomerative clustering on padding cost).
    Greedy merging leaves padding behind (on Multi30k, 16 cells pad the
    target side by 10.4%), so the cells' lengths are then refined by
    coordinate descent (`_refine_cells`): each cell's source or target
    length moves to whichever value, within 16 of it, lowers the padding
    most, with each example in the smallest cell that holds it, until no
    move helps (8.9% on the same data). A cell's batches all have one row
    count, about `tokens_per_batch / longest side`, evened out so that its
    last batch is nearly full (the rest filled with padding rows).

    Returns `(batches, shapes)`: a list of index arrays, and for each
    batch its padded `(rows, source_len, target_len)`.
    """
    source_lengths = np.asarray(source_lengths, dtype=np.int64)
    target_lengths = np.asarray(target_lengths, dtype=np.int64)
    if not (isinstance(max_shapes, (int, np.integer)) and max_shapes >= 1):
        raise ValueError(f"`max_shapes` must be an int >= 1; received {max_shapes!r}.")
    pairs, cell_of = np.unique(
        np.stack([source_lengths, target_lengths], axis=1), axis=0, return_inverse=True
    )
    cell_of = cell_of.reshape(-1)
    # Per cell: its lengths (the padded ones), example count, and the sum
    # of its examples' real lengths (both sides).
    bounds = pairs.astype(np.int64)
    counts = np.bincount(cell_of, minlength=len(pairs)).astype(np.int64)
    real = np.bincount(
        cell_of, weights=source_lengths + target_lengths, minlength=len(pairs)
    )
    owner = np.arange(len(pairs))  # cell -> the cell it was merged into
    alive = np.ones(len(pairs), bool)
    while alive.sum() > max_shapes:
        live = np.flatnonzero(alive)
        b, n, r = bounds[live], counts[live], real[live]
        # (cells, cells, 2): the join of every pair.
        join = np.maximum(b[:, None, :], b[None, :, :])
        padding = n * b.sum(1) - r
        added = (
            (n[:, None] + n[None, :]) * join.sum(-1) - (r[:, None] + r[None, :])
            - padding[:, None] - padding[None, :]
        ).astype(float)
        np.fill_diagonal(added, np.inf)
        i, j = np.unravel_index(np.argmin(added), added.shape)
        keep, gone = live[i], live[j]
        bounds[keep] = join[i, j]
        counts[keep] += counts[gone]
        real[keep] += real[gone]
        alive[gone] = False
        owner[owner == gone] = keep
    pair_counts = np.bincount(cell_of, minlength=len(pairs))
    bounds = _refine_cells(pairs, pair_counts, bounds[alive])
    final = _smallest_holding_cell(pairs, bounds)[1][cell_of]
    rng = np.random.default_rng(seed)
    batches, shapes = [], []
    for cell in np.unique(final):
        rows = rng.permutation(np.flatnonzero(final == cell))
        source_len, target_len = (int(v) for v in bounds[cell])
        size = _rows_per_batch(source_len, target_len, len(rows), tokens_per_batch)
        for start in range(0, len(rows), size):
            batches.append(rows[start : start + size])
            shapes.append((size, source_len, target_len))
    return batches, shapes


def _smallest_holding_cell(pairs, bounds):
    """For each `(source_len, target_len)` pair, the cell of smallest
    `source + target` length that holds it; returns `(slots, cells)`:
    the padded token slots of one example of each pair (None if some pair
    fits no cell) and each pair's cell."""
    # (pairs, cells): whether the cell holds the pair.
    holds = (bounds[None, :, 0] >= pairs[:, None, 0]) & (
        bounds[None, :, 1] >= pairs[:, None, 1]
    )
    size = np.where(holds, bounds.sum(1)[None, :], np.iinfo(np.int64).max)
    cells = size.argmin(1)
    if not holds.any(1).all():
        return None, cells
    return size[np.arange(len(pairs)), cells], cells


def _refine_cells(pairs, counts, bounds, window=16, max_passes=10):
    """Coordinate descent on the cells' lengths: padded token slots of all
    examples (each in its smallest holding cell) is the cost; a move sets
    one cell's source or target length to any value within `window`."""
    bounds = bounds.copy()
    slots, _ = _smallest_holding_cell(pairs, bounds)
    cost = int((counts * slots).sum())
    for _ in range(max_passes):
        moved = False
        for cell, side in np.ndindex(*bounds.shape):
            current = int(bounds[cell, side])
            best = (cost, current)
            for value in range(max(1, current - window), current + window + 1):
                bounds[cell, side] = value
                slots, _ = _smallest_holding_cell(pairs, bounds)
                trial = None if slots is None else int((counts * slots).sum())
                if trial is not None and trial < best[0]:
                    best = (trial, value)
            cost, bounds[cell, side] = best
            moved |= best[1] != current
        if not moved:
            break
    return bounds


def _rows_per_batch(source_len, target_len, examples, tokens_per_batch):
    # Rows that keep `rows * longest side` within `tokens_per_batch`, then
    # evened out over the cell's batches so the last one is nearly full.
    most = max(1, tokens_per_batch // max(source_len, target_len))
    batches = -(-examples // most)
    return -(-examples // batches)


def padding_fraction(lengths, batches, padded_lengths=None):
    """Share of the padded `(rows, length)` slots that are padding; the
    padded length is each batch's longest unless `padded_lengths` (one
    `(rows, length)` per batch) says otherwise."""
    lengths = np.asarray(lengths)
    if padded_lengths is None:
        padded_lengths = [(len(b), int(lengths[b].max())) for b in batches]
    slots = sum(rows * length for rows, length in padded_lengths)
    return 1.0 - float(lengths.sum()) / slots


def make_translation_dataset(
    source_texts,
    target_texts,
    source_tokenizer,
    target_tokenizer,
    max_length=128,
    tokens_per_batch=4096,
    shuffle=True,
    seed=0,
    return_stats=False,
    epoch=None,
    skip_batches=0,
    bounded_shapes=False,
    max_shapes=16,
):
    """A `tf.data.Dataset` of `((source_ids, target_in), target_out)`.

    The corpus is tokenized once (tensorflow-text), split into batches of
    about `tokens_per_batch` padded tokens per side by `length_batches`, and
    each epoch visits the batches in a new random order (with `seed`). A
    batch is padded only to its own longest sentence, so little compute
    goes to padding; `return_stats=True` also returns how little.
    The dataset has a known length, so `model.fit` shows a full progress bar.

    Args:
        source_texts, target_texts: aligned lists of strings.
        source_tokenizer, target_tokenizer: `SubwordTokenizer`s (the same
            object twice for a shared vocabulary).
        max_length: int, the model's `max_length`; longer sentences are cut.
        tokens_per_batch: int, padded tokens per batch per side.
        shuffle: bool, visit batches in a new order every epoch.
        seed: int, for the order (and for tie-breaking in the partition).
        return_stats: bool, also return a dict with `batches`, `shapes`
            (distinct batch shapes), `sentences`, `source_tokens`,
            `target_tokens` and the `source_padding` and `target_padding`
            fractions.
        epoch: None, an int, or an int64 `tf.Variable`. With `shuffle`,
            the order is by default a new one every time the dataset is
            iterated; with `epoch`, it is a seeded permutation of the epoch
            number (read when iteration starts, for a variable), so that a
            training run resumed in another process visits the batches in
            the same order as an uninterrupted one.
        skip_batches: int, leave out the first batches of that order (the
            ones an interrupted epoch had already trained on).
        bounded_shapes: bool, batches of at most `max_shapes` distinct
            `(rows, source_len, target_len)` shapes (`bounded_batches`), for
            XLA (`jit_compile=True`), which compiles a program per shape; a
            little more padding (about 10% at 16 shapes on Multi30k) for a
            bounded number of compilations. Off, each batch is padded to its
            own longest sentence and nearly every batch has its own shape.
        max_shapes: int, the bound for `bounded_shapes`.

    Example:
    >>> ds = make_translation_dataset(de, en, de_tok, en_tok, max_length=128)
    >>> model.fit(ds, epochs=10)
    """
    import tensorflow as tf

    if tokens_per_batch < max_length:
        raise ValueError(
            f"`tokens_per_batch` ({tokens_per_batch}) must be at least "
            f"`max_length` ({max_length}), so that the longest sentence fits."
        )
    source, target = tokenize_pairs(
        source_texts, target_texts, source_tokenizer, target_tokenizer, max_length
    )
    source_lengths = source.row_lengths().numpy()
    target_lengths = target.row_lengths().numpy() - 1  # target_in / target_out
    if bounded_shapes:
        batches, shapes = bounded_batches(
            source_lengths, target_lengths, tokens_per_batch, max_shapes, seed
        )
    else:
        batches = length_batches(source_lengths, target_lengths, tokens_per_batch, seed)
        shapes = [
            (len(b), int(source_lengths[b].max()), int(target_lengths[b].max()))
            for b in batches
        ]
    batch_rows = tf.ragged.constant([b.tolist() for b in batches], dtype="int64")
    # (batches, 3): each batch's padded (rows, source_len, target_len).
    batch_shapes = tf.constant(shapes, dtype="int64")

    def gather(batch_index):
        rows = batch_rows[batch_index]
        size, source_len, target_len = tf.unstack(batch_shapes[batch_index])
        # (size, source_len) and (size, target_len + 1), 0-padded.
        source_ids = tf.gather(source, rows).to_tensor(shape=[size, source_len])
        target_ids = tf.gather(target, rows).to_tensor(shape=[size, target_len + 1])
        return (source_ids, target_ids[:, :-1]), target_ids[:, 1:]

    count = len(batches)
    if not 0 <= skip_batches < count:
        raise ValueError(
            f"`skip_batches` must be in [0, {count}) (the dataset has {count} "
            f"batches); received {skip_batches!r}."
        )
    if skip_batches and shuffle and epoch is None:
        raise ValueError(
            "`skip_batches` needs a fixed order: pass `epoch` (the epoch whose "
            "first batches to skip), or `shuffle=False`."
        )
    dataset = tf.data.Dataset.range(skip_batches, count)
    if shuffle and epoch is None:
        dataset = dataset.shuffle(count, seed=seed, reshuffle_each_iteration=True)
    elif shuffle:

        def position_to_batch(position):
            # A stateless permutation of [0, count) keyed by (seed, epoch).
            key = tf.stack(
                [tf.constant(seed, "int64"), tf.cast(tf.convert_to_tensor(epoch), "int64")]
            )
            return tf.random.experimental.index_shuffle(
                position, key, max_index=count - 1
            )

        dataset = dataset.map(position_to_batch)
    # No autotuning: Keras's `fit` makes an iterator at each epoch's end and
    # drops it when the next epoch makes its own, and deleting an
    # autotuned iterator waits on tf.data's autotuning thread, which on two
    # busy cores stalled a third of the epochs by 8 s (a tiny model) to 50 s
    # (the default; benchmarks/README.md, section 9). A batch is one gather
    # (245 batches in 0.05 s), so two threads and two batches prefetched
    # keep the step fed.
    dataset = dataset.map(gather, num_parallel_calls=2).prefetch(2)
    options = tf.data.Options()
    options.autotune.enabled = False
    dataset = dataset.with_options(options)
    if not return_stats:
        return dataset
    stats = {
        "batches": len(batches),
        "shapes": len(set(shapes)),
        "sentences": len(source_lengths),
        "source_tokens": int(source_lengths.sum()),
        "target_tokens": int(target_lengths.sum()),
        "source_padding": round(
            padding_fraction(source_lengths, batches, [(r, s) for r, s, _ in shapes]), 4
        ),
        "target_padding": round(
            padding_fraction(target_lengths, batches, [(r, t) for r, _, t in shapes]), 4
        ),
    }
    return dataset, stats
