"""The awards ceremony's loops: cached greedy decoding, sampling and beam
search, and the uncached greedy reference they are tested against.

Every strategy runs the same step, `next(rumour, cache, index) ->
(logits, cache)`, which the task supplies (`AwardsCeremony._next_step`: the
latest rumour goes through the Oscar assessment with the key/value caches,
and `Voting` gives the next token's logits); a loop never sees the model.
The loops are `keras.ops.while_loop`s over fixed-size tensors, so one trace
serves every call with the same shapes (the shape buckets of
`decoding/ceremony.py`). The samplers of `decoding/samplers.py` run them.
"""

import numpy as np
from keras import ops

from keras_stageshow.layers.kv_cache import reorder_cache
from keras_stageshow.layers.kv_cache import take_rows
from keras_stageshow.special_ids import PAD_ID

NEG_INF = -1e9


def never_vote_padding(logits):
    """Padding is not a token the ceremony may announce: its logit becomes
    -1e9 (an added constant row, cheaper than a select over the whole batch
    without XLA). # (batch, vocab)"""
    is_pad = ops.equal(ops.arange(ops.shape(logits)[-1]), PAD_ID)
    return logits + ops.where(is_pad, NEG_INF, 0.0)


def length_penalty(length, alpha):
    """GNMT's length penalty, used by the paper (alpha = 0.6):
    `((5 + length) / 6) ** alpha`."""
    return ops.power((5.0 + ops.cast(length, "float32")) / 6.0, alpha)


def pick_sample(logits, uniform, temperature=1.0, top_k=None, top_p=None):
    """Samples one token per row by inverting the CDF at `uniform`.

    logits (rows, vocab) float32; uniform (rows,) in [0, 1). Tokens outside
    the `top_k` most likely, or outside the smallest set whose probability
    reaches `top_p`, are never drawn. One uniform number per row and step
    makes a seeded call reproducible whatever was generated before.
    """
    # A tensor of the backend's from here on, whatever `logits` came as
    # (numpy and a torch tensor do not compare).
    logits = ops.divide(logits, temperature)
    if top_k is not None:
        # (rows, 1): the k-th largest logit.
        kth = ops.min(ops.top_k(logits, top_k)[0], axis=-1, keepdims=True)
        logits = ops.where(logits < kth, NEG_INF, logits)
    if top_p is not None:
        sorted_logits = ops.flip(ops.sort(logits, axis=-1), axis=-1)
        sorted_probs = ops.softmax(sorted_logits, axis=-1)
        # Mass of the tokens strictly more likely than each one.
        before = ops.cumsum(sorted_probs, axis=-1) - sorted_probs
        kept = ops.where(before < top_p, sorted_logits, float("inf"))
        threshold = ops.min(kept, axis=-1, keepdims=True)
        logits = ops.where(logits < threshold, NEG_INF, logits)
    cdf = ops.cumsum(ops.softmax(logits, axis=-1), axis=-1)
    # The first token whose CDF passes u. (rows,)
    token = ops.sum(ops.cast(cdf <= ops.expand_dims(uniform, -1), "int32"), -1)
    return ops.minimum(token, ops.shape(logits)[-1] - 1)


def greedy_search(
    next,
    cache,
    limits,
    steps,
    start_id,
    end_id,
    uniform=None,
    temperature=1.0,
    top_k=None,
    top_p=None,
):
    """Greedy decoding, or sampling when `uniform` (steps, batch) is given.

    Args:
        next: the task's step, `next(rumour (batch, 1), cache, index) ->
            (logits (batch, vocab), cache)`.
        cache: the empty self-attention cache `next` fills.
        limits: int (batch,), tokens each row may generate (<= steps).
        steps: int, the loop's size (and the self-attention cache length).

    Returns `(tokens (batch, steps) int32, scores (batch,) float32)`: each
    row's tokens end with `end_id` (or stop at its limit) and are 0 after;
    the score is the sum of the model's log-probabilities of the tokens.
    """
    batch = ops.shape(limits)[0]
    # (batch, 1 + steps): the start token, then the votes.
    tokens = ops.concatenate(
        [
            ops.full((batch, 1), start_id, "int32"),
            ops.zeros((batch, steps), "int32"),
        ],
        axis=1,
    )
    scores = ops.zeros((batch,), "float32")
    done = ops.less_equal(limits, 0)
    positions = ops.arange(steps + 1, dtype="int32")

    def keep_going(index, tokens, scores, done, cache):
        return ops.logical_and(index < steps, ops.logical_not(ops.all(done)))

    def step(index, tokens, scores, done, cache):
        rumour = ops.slice(tokens, [0, index], [batch, 1])
        logits, cache = next(rumour, cache, index)
        log_probs = ops.log_softmax(logits, axis=-1)
        if uniform is None:
            # The most likely token and its log-probability, in one op
            # (`argmax` would add four passes over the logits that order
            # -0.0 before 0.0). (batch, 1) each
            gained, vote = ops.top_k(log_probs, 1)
            vote = ops.cast(vote[:, 0], "int32")
        else:
            vote = pick_sample(logits, uniform[index], temperature, top_k, top_p)
            gained = ops.take_along_axis(log_probs, ops.expand_dims(vote, -1), -1)
        vote = ops.where(done, 0, vote)
        scores = scores + ops.where(done, 0.0, ops.squeeze(gained, -1))
        # The vote goes to position index + 1. (batch, 1 + steps)
        here = ops.equal(positions, index + 1)
        tokens = ops.where(here, ops.expand_dims(vote, 1), tokens)
        done = done | ops.equal(vote, end_id) | ops.greater_equal(index + 1, limits)
        return index + 1, tokens, scores, done, cache

    _, tokens, scores, _, _ = ops.while_loop(
        keep_going, step, (0, tokens, scores, done, cache)
    )
    return tokens[:, 1:], scores


def beam_search(next, cache, limits, steps, start_id, end_id, num_beams, alpha):
    """Beam search with the paper's length penalty.

    Keeps `num_beams` live hypotheses per sentence. A hypothesis ends when
    it votes `end_id` as one of the `num_beams` best candidates (so one beam
    is exactly greedy decoding when `alpha=0`) or reaches its row's limit;
    its score is `log P / length_penalty(length, alpha)`. A sentence is done
    when its `num_beams` best finished hypotheses cannot be beaten by any
    live one, even at the longest length.

    `next` and `cache` are as in `greedy_search`, for `batch * num_beams`
    rows (each sentence's beams next to each other).

    Returns `(tokens (batch, steps) int32, scores (batch,) float32)` of the
    best finished hypothesis of each sentence.
    """
    batch = ops.shape(limits)[0]
    k = num_beams
    limits = ops.cast(limits, "int32")
    width = steps + 1
    # Hypotheses: (batch, beams, 1 + steps), the start token first.
    seqs = ops.concatenate(
        [
            ops.full((batch, k, 1), start_id, "int32"),
            ops.zeros((batch, k, steps), "int32"),
        ],
        axis=2,
    )
    # Only the first beam is live at first, so the first step's candidates
    # are not k copies of the same tokens. (batch, beams)
    alive = ops.tile(
        ops.expand_dims(
            ops.concatenate([ops.zeros((1,)), ops.full((k - 1,), NEG_INF)]), 0
        ),
        [batch, 1],
    )
    finished_seqs = seqs
    finished = ops.full((batch, k), NEG_INF, "float32")
    done = ops.less_equal(limits, 0)
    best_penalty = length_penalty(limits, alpha)  # (batch,)
    # (batch, 1): each sentence's number, to find its rows in flat arrays.
    sentence = ops.expand_dims(ops.arange(batch, dtype="int32"), -1)
    positions = ops.arange(width, dtype="int32")
    rank = ops.expand_dims(ops.arange(2 * k, dtype="int32"), 0)

    def flat_rows(index, n):
        """Rows, in `(batch * n, ...)`, of each sentence's hypotheses
        `index` (batch, m) among its n. # (batch * m,)"""
        return ops.reshape(index + sentence * n, (-1,))

    def pick(hyps, index):
        """`hyps[b, index[b, j]]`, one gather. # (batch, n, 1 + steps) ->
        (batch, m, 1 + steps)"""
        rows = flat_rows(index, hyps.shape[1])
        picked = take_rows(ops.reshape(hyps, (-1, width)), rows)
        return ops.reshape(picked, (-1, index.shape[1], width))

    def keep_going(index, rumour, seqs, alive, finished_seqs, finished, done, cache):
        return ops.logical_and(index < steps, ops.logical_not(ops.all(done)))

    def step(index, rumour, seqs, alive, finished_seqs, finished, done, cache):
        # (batch * beams, vocab)
        logits, cache = next(rumour, cache, index)
        vocab = ops.shape(logits)[-1]
        # Each beam's score plus each next token's. (batch, beams * vocab)
        log_probs = ops.reshape(ops.log_softmax(logits, -1), (-1, k, vocab))
        candidates = ops.reshape(
            ops.expand_dims(alive, -1) + log_probs, (-1, k * vocab)
        )
        # The 2k best continuations: at least k of them do not end.
        # (batch, 2 * beams)
        top_scores, top_index = ops.top_k(candidates, 2 * k)
        parent = top_index // vocab
        token = ops.cast(top_index % vocab, "int32")
        length = index + 1
        at_limit = ops.expand_dims(ops.greater_equal(length, limits), -1)
        ending = ops.logical_or(ops.equal(token, end_id), at_limit)
        # Candidate hypotheses: the parent's with the token at `length`.
        # (batch, 2 * beams, 1 + steps)
        grown = ops.where(
            ops.equal(positions, length), ops.expand_dims(token, -1), pick(seqs, parent)
        )

        # Finished: ending candidates among the k best.
        new_finished = ops.where(
            ending & (rank < k) & ops.expand_dims(~done, -1),
            top_scores / length_penalty(length, alpha),
            NEG_INF,
        )
        finished, best = ops.top_k(
            ops.concatenate([finished, new_finished], axis=1), k
        )
        finished_seqs = pick(ops.concatenate([finished_seqs, grown], axis=1), best)

        # Live: the k best candidates that do not end. (batch, beams)
        alive, best = ops.top_k(ops.where(ending, NEG_INF, top_scores), k)
        seqs = pick(grown, best)
        live = flat_rows(best, 2 * k)
        # Their tokens are the next rumours. (batch * beams, 1)
        rumour = ops.expand_dims(take_rows(ops.reshape(token, (-1,)), live), -1)
        # Each live beam takes its parent's caches. (batch * beams,)
        parents = take_rows(flat_rows(parent, k), live)
        cache = [reorder_cache(c, parents) for c in cache]

        # Done: the worst kept finished hypothesis beats the best a live
        # one could still reach (log P only falls; the penalty grows to
        # its value at the row's limit).
        can_reach = alive[:, 0] / best_penalty
        done = (
            done
            | ops.greater_equal(length, limits)
            | ((finished[:, -1] > NEG_INF / 2) & (can_reach <= finished[:, -1]))
        )
        return (
            index + 1, rumour, seqs, alive, finished_seqs, finished, done, cache
        )

    rumour = ops.full((batch * k, 1), start_id, "int32")
    _, _, _, _, finished_seqs, finished, _, _ = ops.while_loop(
        keep_going,
        step,
        (0, rumour, seqs, alive, finished_seqs, finished, done, cache),
    )
    best = finished_seqs[:, 0, 1:]
    # Nothing after the end token.
    after_end = ops.cumsum(ops.cast(ops.equal(best, end_id), "int32"), 1)
    after_end = after_end - ops.cast(ops.equal(best, end_id), "int32")
    best = ops.where(after_end > 0, 0, best)
    return best, finished[:, 0]


def uncached_greedy(model, source, limits, steps, start_id, end_id):
    """Greedy decoding that re-runs the decoder over the whole prefix at
    every step (no cache), in numpy: the reference the cached loop is tested
    against. Same arguments and results as `greedy_search`."""
    batch = source.shape[0]
    tokens = np.zeros((batch, steps + 1), "int32")
    tokens[:, 0] = start_id
    scores = np.zeros((batch,), "float32")
    done = limits <= 0
    for index in range(steps):
        logits = model((source, tokens[:, : index + 1]), training=False)
        logits = never_vote_padding(logits[:, -1, :])
        log_probs = ops.convert_to_numpy(ops.log_softmax(logits, axis=-1))
        vote = np.where(done, 0, np.argmax(log_probs, axis=-1))
        scores += np.where(done, 0.0, log_probs[np.arange(batch), vote])
        tokens[:, index + 1] = vote
        done |= (vote == end_id) | (index + 1 >= limits)
        if done.all():
            break
    return tokens[:, 1:], scores
