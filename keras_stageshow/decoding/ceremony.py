"""The decoding core: everything between source ids (or texts) and voted
tokens (or translations), written once.

`Transformer.generate` (ids, numpy or tensors: `decoding/generate_ids.py`),
`Translator.generate` / `translate`
(texts) and the SavedModel's text signatures (texts, as graph ops) all run
the code below, so "the served graph translates exactly as the library" is
true by construction, not by copies kept equal by hand:

- the strategies are samplers (`decoding/samplers.py`), checked when made;
- texts -> source ids is the preprocessor's (`TranslatorPreprocessor.
  encode_sources`: cut to `max_length - 1` subwords plus the end token);
- `default_limits`: how many tokens each row may vote (source length + 50,
  the paper, capped at `max_length`), or a fixed `max_new_tokens`;
- `shape_buckets`: batch rounded up to a power of two, lengths to a
  multiple of 16, so one traced loop serves every call that rounds alike;
- `AwardsCeremony.generate`: pads to the buckets and runs the cached loop
  (`decoding/strategies.py`), traced once per bucket (the library) or
  inline in the caller's graph (the export);
- `AwardsCeremony.translate`: invalid UTF-8 replaced, then `REQUEST_CHUNK`
  strings at a time: blank strings -> "", the rest sorted by length and
  decoded `batch_size` at a time, then put back in order. It is written
  with TensorFlow ops: eagerly its loops are Python loops, in the exported
  graph `tf.while_loop`s.

The ids-level functions use `keras.ops` (any backend); the text level needs
TensorFlow and tensorflow-text (the tokenizers).
"""

import functools
import weakref

import keras
import numpy as np
from keras import ops

from keras_stageshow.decoding import strategies
from keras_stageshow.layers.utils import is_int
from keras_stageshow.special_ids import END_ID
from keras_stageshow.special_ids import PAD_ID
from keras_stageshow.special_ids import START_ID
from keras_stageshow.utf8 import valid_utf8

# The paper's maximum output length: input length + 50.
EXTRA_TOKENS = 50
LENGTH_BUCKET = 16
# Strings `translate` takes at a time (rounded up to whole batches): a
# request's memory is bounded by this, not by the request's size.
REQUEST_CHUNK = 1024
# Python's `str.isspace` as an RE2 class: ASCII \t-\r, the separators
# \x1c-\x1f, NEL, and Unicode's space, line and paragraph separators.
BLANK_PATTERN = r"[\t-\r\x{1c}-\x{1f}\x{85}\p{Z}]*"


def check_max_new_tokens(max_new_tokens, max_length):
    if max_new_tokens is not None and (
        not is_int(max_new_tokens) or not 0 < max_new_tokens <= max_length
    ):
        raise ValueError(
            f"`max_new_tokens` must be an int in [1, max_length={max_length}] "
            f"or None; received {max_new_tokens!r}."
        )
    return None if max_new_tokens is None else int(max_new_tokens)


def source_lengths(source_ids):
    """Real tokens per row. # (batch,) int32"""
    return ops.sum(ops.cast(ops.not_equal(source_ids, PAD_ID), "int32"), axis=1)


def default_limits(lengths, max_length, max_new_tokens=None):
    """Tokens each row may vote: `max_new_tokens`, or by default its source
    length + 50 (the paper), capped at `max_length`. # (batch,) int32"""
    if max_new_tokens is not None:
        return ops.full(ops.shape(lengths), max_new_tokens, "int32")
    return ops.minimum(lengths + EXTRA_TOKENS, max_length)


def shape_buckets(batch, source_len, steps, max_length):
    """`(batch, source_len, steps)` rounded up to their shape bucket: the
    batch to a power of two, the lengths to a multiple of 16, capped at
    `max_length`. Padding rows and columns change no row's result. Python
    ints give ints (the library picks a traced loop by them); scalar
    tensors give tensors (inside the exported graph)."""
    if all(is_int(x) for x in (batch, source_len, steps)):
        return (
            1 << (batch - 1).bit_length(),
            min(_round_up(source_len, LENGTH_BUCKET), max_length),
            min(_round_up(steps, LENGTH_BUCKET), max_length),
        )
    powers = 2 ** ops.arange(31, dtype="int32")
    batch_bucket = ops.min(ops.where(powers >= batch, powers, powers[-1]))
    return (
        batch_bucket,
        ops.minimum(_round_up(source_len, LENGTH_BUCKET), max_length),
        ops.minimum(_round_up(steps, LENGTH_BUCKET), max_length),
    )


def _round_up(value, multiple):
    return -(-value // multiple) * multiple


class AwardsCeremony:
    """The awards ceremony of one model: cached decoding from source ids or
    texts, the one implementation every entry point calls.

    Args:
        model: a `Transformer` (built here if it is not yet).
        jit_compile: bool, compile each shape bucket's loop with XLA
            (TensorFlow; JAX compiles its loop anyway). Decides the cache
            write: XLA's in-place dynamic-update-slice with XLA,
            TensorFlow's XLA-free in-place row update without
            (`layers/kv_cache.py`).
        traced: bool. True (the library): inputs are numpy or eager
            tensors, and each shape bucket's loop is traced once and reused
            (`traced_functions`). False (the SavedModel export): the loop
            runs inline, with symbolic shapes, in the graph being traced
            (as an XLA cluster with `jit_compile`).
        start_id, end_id: the first rumour and the end of a sentence.
    """

    def __init__(
        self, model, jit_compile=True, traced=True, start_id=START_ID, end_id=END_ID
    ):
        if not model.built:
            model.build(((None, None), (None, None)))
        self.model = model
        self.jit_compile = bool(jit_compile)
        self.traced = bool(traced)
        self.start_id = start_id
        self.end_id = end_id
        on_tensorflow = keras.backend.backend() == "tensorflow"
        self.cache_write = (
            "in_place" if on_tensorflow and not jit_compile else "slice_update"
        )
        # Shape bucket and options -> the traced loop.
        self.traced_functions = {}

    def generate(self, source_ids, limits, sampler):
        """Decodes `source_ids` `(batch, source_len)` (0-padded), each row
        voting at most `limits[row]` tokens, with `sampler` (a sampler of
        `decoding/samplers.py`).

        Returns `(tokens (batch, max(limits)) int32, scores (batch,))`,
        numpy when `traced`, tensors otherwise.
        """
        if self.traced:
            source_ids = np.asarray(source_ids, "int32")
            limits = np.asarray(limits, "int32")
            batch, source_len = source_ids.shape
            steps = int(limits.max())
        else:
            batch, source_len = ops.shape(source_ids)[0], ops.shape(source_ids)[1]
            steps = ops.max(limits)
        batch_bucket, length_bucket, steps_bucket = shape_buckets(
            batch, source_len, steps, self.model.max_length
        )
        inputs = [
            ops.pad(
                source_ids,
                [[0, batch_bucket - batch], [0, length_bucket - source_len]],
            ),
            ops.pad(limits, [[0, batch_bucket - batch]]),
        ]
        if sampler.needs_uniform:
            seed = sampler.seed
            generator = keras.random.SeedGenerator(seed) if seed is not None else None
            inputs.append(
                keras.random.uniform((steps_bucket, batch_bucket), seed=generator)
            )
        if self.traced:
            key = (batch_bucket, length_bucket, steps_bucket, sampler.options())
            loop = self.traced_functions.get(key)
            if loop is None:
                loop = self._trace(steps_bucket, sampler)
                self.traced_functions[key] = loop
            tokens, scores = loop(*inputs)
            tokens = ops.convert_to_numpy(tokens)
            scores = ops.convert_to_numpy(scores)
        else:
            loop = functools.partial(self._loop, sampler=sampler)
            if self.jit_compile:
                # The opt-in XLA export: the loop is an XLA cluster of the
                # graph, compiled when a shape bucket is first met.
                import tensorflow as tf

                loop = tf.function(loop, autograph=False, jit_compile=True)
            tokens, scores = loop(*inputs, steps=steps_bucket)
        return tokens[:batch, :steps], scores[:batch]

    def _loop(self, source_ids, limits, uniform=None, *, steps, sampler):
        """The show performed once, the caches, and `sampler`'s loop over
        the `next` step built here from the backbone."""
        next, cache = self._next_step(source_ids, steps, sampler.num_beams)
        return sampler(
            next, cache, limits, steps, self.start_id, self.end_id, uniform=uniform
        )

    def _next_step(self, source_ids, steps, repeat):
        """`(next, cache)`: the step a sampler runs, `next(rumour (rows, 1),
        cache, index) -> (logits (rows, vocab), cache)`, and the empty
        self-attention cache for `steps` votes of `batch * repeat` rows.
        The show, its cross-attention keys/values and the voting kernel are
        computed here, once; every beam of a sentence watches the same
        show."""
        model = self.model
        # (batch, source_len, d_model), (batch, source_len)
        enc_output, source_mask = model.call_encoder(source_ids)
        if repeat > 1:
            enc_output = ops.repeat(enc_output, repeat, axis=0)
            source_mask = ops.repeat(source_mask, repeat, axis=0)
        rows = ops.shape(enc_output)[0]
        assessment = model.oscar_assessment
        cross_cache = assessment.compute_cross_attention_cache(enc_output)
        cache = assessment.empty_self_attention_cache(rows, steps, self.cache_write)
        cache_write = self.cache_write
        # The tied embeddings transposed once, not at every step.
        voting_kernel = model.voting.tied_kernel()

        def next(rumour, cache, index):
            logits, (cache, _) = model.call_decoder_with_cache(
                rumour, source_mask, (cache, cross_cache), index, cache_write,
                voting_kernel,
            )
            return strategies.never_vote_padding(logits), cache

        return next, cache

    def _trace(self, steps, sampler):
        """One traced loop per shape bucket: a `tf.function` with the
        TensorFlow backend (XLA with `jit_compile`); other backends run the
        loop as it is (JAX's `while_loop` compiles its body by itself)."""

        def loop(*inputs):
            return self._loop(*inputs, steps=steps, sampler=sampler)

        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            return tf.function(loop, autograph=False, jit_compile=self.jit_compile)
        return loop

    def translate(self, texts, preprocessor, sampler, batch_size, max_new_tokens=None):
        """Strings `[n]` -> `(translations [n] strings, scores [n] float32)`.

        Invalid UTF-8 bytes become U+FFFD first (`utf8.valid_utf8`), so a
        bad string never fails the others. The strings are then taken
        `REQUEST_CHUNK` at a time (rounded up to whole batches), so memory
        stays that of one chunk however many strings come. In each chunk,
        blank strings give `""` and score 0 without running the model; the
        others are encoded (`preprocessor.encode_sources`), sorted longest
        first and decoded `batch_size` at a time, then returned in the
        input's order (`preprocessor.detokenize`). TensorFlow ops: eager
        tensors from the library, symbolic ones in the exported graph.
        """
        import tensorflow as tf

        texts = tf.ensure_shape(tf.convert_to_tensor(texts, tf.string), [None])
        texts = valid_utf8(texts)
        count = tf.size(texts)
        chunk_rows = -(-REQUEST_CHUNK // batch_size) * batch_size
        chunks = (count + chunk_rows - 1) // chunk_rows

        def request_chunk(chunk):
            part = texts[chunk * chunk_rows : (chunk + 1) * chunk_rows]
            return self._translate_chunk(
                part, preprocessor, sampler, batch_size, max_new_tokens
            )

        translations, scores = _concatenated_over_chunks(chunks, request_chunk)
        return tf.ensure_shape(translations, [None]), tf.reshape(scores, [count])

    def _translate_chunk(self, texts, preprocessor, sampler, batch_size, max_new_tokens):
        """`translate` for one chunk of valid UTF-8 strings."""
        import tensorflow as tf

        count = tf.size(texts)
        blank = tf.strings.regex_full_match(texts, BLANK_PATTERN)
        todo = tf.reshape(tf.where(~blank), [-1])
        source_ids, lengths = preprocessor.encode_sources(tf.gather(texts, todo))
        # Longest first, so a chunk's rows are about as long as each other.
        order = tf.argsort(-lengths, stable=True)
        rows = tf.size(order)
        chunks = (rows + batch_size - 1) // batch_size

        def chunk_body(chunk):
            chosen = order[chunk * batch_size : (chunk + 1) * batch_size]
            chosen_lengths = tf.gather(lengths, chosen)
            width = tf.reduce_max(chosen_lengths)
            chosen_ids = tf.gather(source_ids, chosen)[:, :width]
            limits = default_limits(chosen_lengths, self.model.max_length, max_new_tokens)
            tokens, chunk_scores = self.generate(chosen_ids, limits, sampler)
            return preprocessor.detokenize(tokens), chunk_scores

        translations, scores = _concatenated_over_chunks(chunks, chunk_body)
        # Back to the input's order; blank strings get "" and score 0
        # (the extra last entry).
        inverse = tf.argsort(order)
        translations = tf.concat([tf.gather(translations, inverse), [""]], 0)
        scores = tf.concat([tf.gather(scores, inverse), [0.0]], 0)
        position = tf.where(blank, rows, tf.cumsum(tf.cast(~blank, tf.int32)) - 1)
        return (
            tf.ensure_shape(tf.gather(translations, position), [None]),
            tf.reshape(tf.gather(scores, position), [count]),
        )


_CEREMONIES = weakref.WeakKeyDictionary()


def _concatenated_over_chunks(chunks, body):
    """`body(chunk)` -> `(strings [k], scores [k])` for `chunk` in
    `range(chunks)`, concatenated: a Python loop eagerly, a `tf.while_loop`
    in a graph, one chunk at a time (memory stays that of one chunk)."""
    import tensorflow as tf

    def step(chunk, strings, scores):
        chunk_strings, chunk_scores = body(chunk)
        return (
            chunk + 1,
            tf.concat([strings, chunk_strings], 0),
            tf.concat([scores, tf.cast(chunk_scores, tf.float32)], 0),
        )

    _, strings, scores = tf.while_loop(
        lambda chunk, *_: chunk < chunks,
        step,
        (tf.constant(0), tf.constant([], tf.string), tf.constant([], tf.float32)),
        shape_invariants=(
            tf.TensorShape([]), tf.TensorShape([None]), tf.TensorShape([None])
        ),
        parallel_iterations=1,
    )
    return strings, scores


def ceremony_for(model, jit_compile=True, start_id=START_ID, end_id=END_ID):
    """The library's `AwardsCeremony` of `model` for these settings, made
    once and kept while the model lives, so its traced loops are reused by
    every `generate` and `translate` call."""
    ceremonies = _CEREMONIES.setdefault(model, {})
    key = (bool(jit_compile), start_id, end_id)
    if key not in ceremonies:
        ceremonies[key] = AwardsCeremony(
            model, jit_compile=jit_compile, start_id=start_id, end_id=end_id
        )
    return ceremonies[key]


def check_jit_compile(jit_compile):
    """`"auto"` is on: XLA fuses each decoding step's many small ops."""
    if jit_compile == "auto":
        return True
    if not isinstance(jit_compile, bool):
        raise ValueError(
            f'`jit_compile` must be True, False or "auto"; received {jit_compile!r}.'
        )
    return jit_compile


def forget_ceremonies(model):
    """Drops `model`'s ceremonies, so the next `ceremony_for` traces anew:
    their traced loops captured the model's variables as they were, and
    would keep decoding with the old ones after `model.quantize` replaced
    its kernels."""
    _CEREMONIES.pop(model, None)
