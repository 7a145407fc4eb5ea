"""`generate`: the awards ceremony from token ids (`Transformer.generate`,
and `Translator.generate` on ids), on the decoding core of `ceremony.py`."""

from keras import ops

from keras_stageshow.decoding import samplers
from keras_stageshow.decoding import strategies
from keras_stageshow.decoding.ceremony import ceremony_for
from keras_stageshow.decoding.ceremony import check_jit_compile
from keras_stageshow.decoding.ceremony import check_max_new_tokens
from keras_stageshow.decoding.ceremony import default_limits
from keras_stageshow.decoding.ceremony import source_lengths
from keras_stageshow.generation_options import DEFAULTS
from keras_stageshow.layers.utils import check_token_ids
from keras_stageshow.special_ids import END_ID
from keras_stageshow.special_ids import START_ID


def generate(
    model,
    source_ids,
    max_new_tokens=DEFAULTS.max_new_tokens,
    strategy=DEFAULTS.strategy,
    num_beams=DEFAULTS.num_beams,
    length_penalty=DEFAULTS.length_penalty,
    temperature=DEFAULTS.temperature,
    top_k=DEFAULTS.top_k,
    top_p=DEFAULTS.top_p,
    seed=DEFAULTS.seed,
    start_id=START_ID,
    end_id=END_ID,
    use_cache=True,
    return_scores=False,
    jit_compile="auto",
):
    """`Transformer.generate`: the awards ceremony from source ids.

    The committee starts from the start token; each step it votes for
    the next token, which is fed back as the next rumour, until a row
    votes `end_id` or reaches its length limit. The decoder's
    self-attention keys/values grow by one position a step and the
    show's keys/values (cross-attention) are projected once, so a step
    costs one token's work, not the prefix's.

    The loop is traced once per shape bucket (batch rounded up to a
    power of two, lengths to a multiple of 16, padding rows and columns
    that do not change any row's result) and reused: with the
    TensorFlow backend it runs as one `tf.function`.

    Args:
        source_ids: int `(batch, source_len)`, 0-padded.
        max_new_tokens: int, tokens to generate at most per row. By
            default each row gets its own source length + 50 (the
            paper), capped at `max_length`.
        strategy: `"greedy"`, `"beam"` (beam search), or `"sample"`
            (top-k / top-p sampling).
        num_beams: int, beams for `"beam"`.
        length_penalty: float, the paper's alpha for `"beam"`:
            hypotheses are ranked by `log P / ((5 + len) / 6) ** alpha`.
        temperature, top_k, top_p: for `"sample"`: logits are divided
            by `temperature`; only the `top_k` most likely tokens and/or
            the smallest set with probability >= `top_p` are drawn.
        seed: int, makes `"sample"` reproducible.
        start_id, end_id: the start and end tokens (2 and 3 in the
            library's reserved layout: pad 0, unknown 1, start 2, end 3).
        use_cache: bool; `False` re-runs the decoder over the whole
            prefix each step (greedy only; the reference the cached
            loop is tested against).
        return_scores: bool, also return each row's score: the sum of
            the tokens' log-probabilities (greedy, sample) or the
            length-penalized one (beam).
        jit_compile: bool or `"auto"` (on), compile the decoding loop
            with XLA (TensorFlow backend; JAX compiles its loop anyway).
            XLA fuses each step's many small ops (benchmarks/README.md),
            for about one second more of tracing per shape bucket.
            `False` runs the loop as a plain `tf.function`, the XLA-free
            graph the SavedModel export serves.

    Returns:
        int32 numpy array `(batch, max_new_tokens)`: the generated ids
        without the start token, each row ending with `end_id` (if
        reached) and 0 after it; with `return_scores`, also the
        float32 scores `(batch,)`.
    """
    source_ids = check_token_ids(
        source_ids, "source_ids", model.input_vocab_size, model.max_length
    )
    source = ops.convert_to_numpy(source_ids).astype("int32")
    if source.shape[0] == 0:
        raise ValueError("`source_ids` is an empty batch; pass at least one row.")
    for name, value in (("start_id", start_id), ("end_id", end_id)):
        if not 0 < value < model.target_vocab_size:
            raise ValueError(
                f"`{name}` must be a target token id in "
                f"[1, {model.target_vocab_size}); received {value}."
            )
    max_new_tokens = check_max_new_tokens(max_new_tokens, model.max_length)
    jit_compile = check_jit_compile(jit_compile)
    sampler = samplers.from_options(
        strategy, num_beams=num_beams, length_penalty=length_penalty,
        temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
    ).check(model.target_vocab_size)
    if not use_cache and strategy != "greedy":
        raise ValueError(
            "`use_cache=False` is the greedy reference only; use "
            f"`use_cache=True` for strategy={strategy!r}."
        )
    limits = ops.convert_to_numpy(
        default_limits(source_lengths(source), model.max_length, max_new_tokens)
    )
    if use_cache:
        ceremony = ceremony_for(model, jit_compile, start_id, end_id)
        tokens, scores = ceremony.generate(source, limits, sampler)
    else:
        steps = int(limits.max())
        tokens, scores = strategies.uncached_greedy(
            model, source, limits, steps, start_id, end_id
        )
    return (tokens, scores) if return_scores else tokens
