import functools

import keras
import numpy as np
from keras import ops

from keras_stageshow.models import generation
from keras_stageshow.layers.oscar_assessment import OscarAssessment
from keras_stageshow.layers.stage_show import StageShow
from keras_stageshow.layers.utils import check_heads
from keras_stageshow.layers.utils import check_positive_int
from keras_stageshow.layers.utils import check_rank
from keras_stageshow.layers.utils import check_token_ids
from keras_stageshow.layers.utils import padding_mask_from_ids
from keras_stageshow.layers.utils import tracing_for_xla
from keras_stageshow.layers.voting import Voting
from keras_stageshow.training.losses import MaskedSparseCategoricalCrossentropy
from keras_stageshow.training.metrics import MaskedAccuracy
from keras_stageshow.training.schedule import TransformerSchedule


@keras.saving.register_keras_serializable(package="keras_stageshow")
class Transformer(keras.Model):
    """The stage show and the Oscar assessment: the encoder-decoder Transformer.

    `StageShow` (encoder) performs the source; `OscarAssessment` (decoder)
    assesses the target so far while watching the show; `Voting` projects
    onto the target vocabulary. The defaults are the paper's base model
    (N=6, d_model=512, d_ff=2048, h=8, dropout 0.1).

    Masking: token id 0 is padding, in the source and in the target. The
    source padding mask reaches the encoder's self-attention and every
    decoder cross-attention; the look-ahead mask and the target padding mask
    reach the decoder's self-attention. No position attends to padding or to
    the future.

    Weight sharing: the target embedding matrix doubles as the pre-softmax
    projection (`Voting`), and is multiplied by sqrt(d_model) when used as
    an embedding, as in the paper (section 3.4). `share_embeddings=True`
    makes one matrix also serve as the source embedding, which requires one
    vocabulary for both languages.

    Args:
        input_vocab_size: int, source vocabulary size (ids `0 .. size-1`).
        target_vocab_size: int, target vocabulary size.
        num_layers: int, rounds `N` in the stage show and in the assessment.
        d_model: int, model width.
        num_heads: int, attention heads `h`; must divide `d_model`.
        d_ff: int, feed-forward width.
        dropout_rate: float, dropout on embeddings and every sub-layer output.
        max_length: int, longest source or target sequence accepted.
        share_embeddings: bool, one embedding matrix for source, target and
            projection.
        norm_first: bool, pre-norm blocks (for deep stacks) instead of the
            paper's post-norm.
        attention_dropout_rate: float, dropout on attention weights (0 in the
            paper).
        activation: feed-forward activation (`"relu"`).
        layer_norm_epsilon: float.
        **kwargs: `keras.Model` keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: a tuple `(source_ids, target_ids)` (or a dict with those
            keys) of int tensors `(batch, source_len)` and
            `(batch, target_len)`. `target_ids` is the shifted-right target
            (start token first).
        training: bool, whether dropout is active.

    Returns logits `(batch, target_len, target_vocab_size)`, float32.

    Example:
    >>> model = Transformer(input_vocab_size=1000, target_vocab_size=1000,
    ...                     num_layers=2, d_model=64, num_heads=4, d_ff=128)
    >>> model.compile()  # the paper's Adam, schedule and label smoothing
    >>> model.fit(dataset_of_source_target_in_and_target_out, epochs=10)
    """

    def __init__(
        self,
        input_vocab_size,
        target_vocab_size,
        num_layers=6,
        d_model=512,
        num_heads=8,
        d_ff=2048,
        dropout_rate=0.1,
        max_length=512,
        share_embeddings=False,
        norm_first=False,
        attention_dropout_rate=0.0,
        activation="relu",
        layer_norm_epsilon=1e-5,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.input_vocab_size = check_positive_int(
            input_vocab_size, "input_vocab_size"
        )
        self.target_vocab_size = check_positive_int(
            target_vocab_size, "target_vocab_size"
        )
        self.d_model = check_positive_int(d_model, "d_model")
        num_heads = check_positive_int(num_heads, "num_heads")
        check_heads(self.d_model, num_heads)
        if share_embeddings and input_vocab_size != target_vocab_size:
            raise ValueError(
                "`share_embeddings=True` needs one vocabulary for source and "
                f"target, but input_vocab_size={input_vocab_size} and "
                f"target_vocab_size={target_vocab_size}. Build one shared "
                "tokenizer, or set share_embeddings=False."
            )
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.d_ff = d_ff
        self.dropout_rate = dropout_rate
        self.max_length = max_length
        self.share_embeddings = bool(share_embeddings)
        self.norm_first = bool(norm_first)
        self.attention_dropout_rate = attention_dropout_rate
        self.activation = activation
        self.layer_norm_epsilon = layer_norm_epsilon

        stack_kwargs = dict(
            num_layers=num_layers,
            d_model=d_model,
            num_heads=num_heads,
            d_ff=d_ff,
            dropout_rate=dropout_rate,
            max_length=max_length,
            attention_dropout_rate=attention_dropout_rate,
            activation=activation,
            norm_first=norm_first,
            layer_norm_epsilon=layer_norm_epsilon,
            dtype=self.dtype_policy,
        )
        # The stage show (encoder).
        self.stage_show = StageShow(
            input_vocab_size, name="stage_show", **stack_kwargs
        )
        # The Oscar assessment (decoder), sharing the source embedding when
        # asked to.
        shared = (
            self.stage_show.preprocess.token_embedding
            if self.share_embeddings
            else None
        )
        self.oscar_assessment = OscarAssessment(
            target_vocab_size,
            token_embedding=shared,
            name="oscar_assessment",
            **stack_kwargs,
        )
        # Token ids are checked once, where they enter each stack, under the
        # names the user passed them as.
        self.stage_show.preprocess.token_ids_name = "source_ids"
        self.oscar_assessment.preprocess.token_ids_name = "target_ids"
        # Voting: the target embedding, transposed, is the projection.
        self.voting = Voting(
            target_vocab_size,
            token_embedding=self.oscar_assessment.preprocess.token_embedding,
            dtype=self.dtype_policy,
            name="voting",
        )

    def build(self, input_shape):
        source_shape, target_shape = _split_inputs(input_shape, shapes=True)
        what = "of token ids with shape (batch, sequence_length)"
        check_rank(source_shape, 2, "source_ids", what)
        check_rank(target_shape, 2, "target_ids", what)
        self.stage_show.build(source_shape)
        enc_output_shape = (*source_shape, self.d_model)
        self.oscar_assessment.build(target_shape, enc_output_shape)
        self.voting.build((*target_shape, self.d_model))
        self.built = True

    def call(self, inputs, training=None, return_attention_scores=False):
        # Ids are checked by each stack's Preprocess (rank, dtype, range,
        # length), named source_ids / target_ids.
        source_ids, target_ids = _split_inputs(inputs)
        # (batch, source_len)
        source_mask = padding_mask_from_ids(source_ids)
        # The show. (batch, source_len, d_model)
        enc_output = self.stage_show(
            source_ids,
            return_attention_scores=return_attention_scores,
            training=training,
        )
        if return_attention_scores:
            enc_output, rehearsal_scores = enc_output
        # The assessment. (batch, target_len, d_model)
        dec_output = self.oscar_assessment(
            target_ids,
            enc_output,
            enc_output_mask=source_mask,
            return_attention_scores=return_attention_scores,
            training=training,
        )
        if return_attention_scores:
            dec_output, decoder_scores = dec_output
        # Voting. (batch, target_len, target_vocab_size)
        logits = self.voting(dec_output)
        if return_attention_scores:
            return logits, {"rehearsal": rehearsal_scores, **decoder_scores}
        return logits

    def attention_scores(self, inputs):
        """Attention weights of every round, for one batch (for plotting).

        Returns a dict of lists with one entry per round:
        `"rehearsal"` (encoder self-attention) and `"ask_questions"` (decoder
        self-attention) `(batch, num_heads, len, len)`, and `"watch_show"`
        (cross-attention) `(batch, num_heads, target_len, source_len)`.
        """
        _, scores = self(inputs, training=False, return_attention_scores=True)
        return scores

    def generate(
        self,
        source_ids,
        max_new_tokens=None,
        strategy="greedy",
        num_beams=4,
        length_penalty=0.6,
        temperature=1.0,
        top_k=None,
        top_p=None,
        seed=None,
        start_id=2,
        end_id=3,
        use_cache=True,
        return_scores=False,
        jit_compile="auto",
    ):
        """The awards ceremony: autoregressive decoding from source ids.

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
                XLA fuses each step's many small ops: greedy decoding is
                4.4x faster at batch 1 and 1.7x at batch 32 on a CPU
                (benchmarks/README.md), for about one second more of
                tracing per shape bucket. `False` runs the
                loop as a plain `tf.function`.

        Returns:
            int32 numpy array `(batch, max_new_tokens)`: the generated ids
            without the start token, each row ending with `end_id` (if
            reached) and 0 after it; with `return_scores`, also the
            float32 scores `(batch,)`.
        """
        source_ids = check_token_ids(
            source_ids, "source_ids", self.input_vocab_size, self.max_length
        )
        source = ops.convert_to_numpy(source_ids).astype("int32")
        batch, source_len = source.shape
        if batch == 0:
            raise ValueError("`source_ids` is an empty batch; pass at least one row.")
        for name, value in (("start_id", start_id), ("end_id", end_id)):
            if not 0 < value < self.target_vocab_size:
                raise ValueError(
                    f"`{name}` must be a target token id in "
                    f"[1, {self.target_vocab_size}); received {value}."
                )
        if max_new_tokens is None:
            lengths = (source != 0).sum(axis=1)
            limits = np.minimum(lengths + 50, self.max_length)
        else:
            if (
                not isinstance(max_new_tokens, (int, np.integer))
                or not 0 < max_new_tokens <= self.max_length
            ):
                raise ValueError(
                    "`max_new_tokens` must be an int in [1, max_length="
                    f"{self.max_length}]; received {max_new_tokens!r}."
                )
            limits = np.full((batch,), max_new_tokens)
        limits = limits.astype("int32")
        steps = int(limits.max())
        if not self.built:
            self.build(((None, None), (None, None)))
        jit_compile = self._resolve_generate_jit(jit_compile)
        options = _check_strategy(
            strategy, num_beams, length_penalty, temperature, top_k, top_p,
            self.target_vocab_size, use_cache,
        )
        if not use_cache:
            tokens, scores = self._uncached_greedy(
                source, limits, steps, start_id, end_id
            )
        else:
            tokens, scores = self._compiled_generate(
                source, limits, steps, start_id, end_id, options, seed, jit_compile
            )
        tokens = tokens[:, :steps]
        return (tokens, scores) if return_scores else tokens

    def _resolve_generate_jit(self, jit_compile):
        if jit_compile == "auto":
            return True
        if not isinstance(jit_compile, bool):
            raise ValueError(
                "`jit_compile` must be True, False or \"auto\"; received "
                f"{jit_compile!r}."
            )
        return jit_compile

    def _compiled_generate(
        self, source, limits, steps, start_id, end_id, options, seed, jit_compile
    ):
        batch, source_len = source.shape
        # Shape buckets: one trace serves every call that rounds alike.
        batch_bucket = 1 << (batch - 1).bit_length()
        length_bucket = min(_round_up(source_len, 16), self.max_length)
        steps_bucket = min(_round_up(steps, 16), self.max_length)
        padded = np.zeros((batch_bucket, length_bucket), "int32")
        padded[:batch, :source_len] = source
        padded_limits = np.zeros((batch_bucket,), "int32")
        padded_limits[:batch] = limits
        inputs = [padded, padded_limits]
        if options["strategy"] == "sample":
            inputs.append(
                keras.random.uniform(
                    (steps_bucket, batch_bucket),
                    seed=keras.random.SeedGenerator(seed) if seed is not None else None,
                )
            )
        key = (
            batch_bucket, length_bucket, steps_bucket, start_id, end_id,
            tuple(sorted(options.items())), jit_compile,
        )
        if not hasattr(self, "_generate_functions"):
            self._generate_functions = {}
        function = self._generate_functions.get(key)
        if function is None:
            function = _compile(
                functools.partial(
                    self._decode,
                    steps=steps_bucket,
                    start_id=start_id,
                    end_id=end_id,
                    **options,
                ),
                jit_compile,
            )
            self._generate_functions[key] = function
        tokens, scores = function(*inputs)
        tokens = ops.convert_to_numpy(tokens)[:batch]
        return tokens, ops.convert_to_numpy(scores)[:batch]

    def _decode(
        self, source_ids, limits, uniform=None, *, steps, start_id, end_id,
        strategy, **options,
    ):
        if strategy == "beam":
            return generation.beam_search(
                self, source_ids, limits, steps, start_id, end_id,
                options["num_beams"], options["length_penalty"],
            )
        return generation.greedy_search(
            self, source_ids, limits, steps, start_id, end_id, uniform,
            **{k: options[k] for k in ("temperature", "top_k", "top_p") if k in options},
        )

    def _uncached_greedy(self, source, limits, steps, start_id, end_id):
        """Greedy decoding that re-runs the decoder over the whole prefix at
        every step (no cache): the reference for the cached loop."""
        batch = source.shape[0]
        tokens = np.zeros((batch, steps + 1), "int32")
        tokens[:, 0] = start_id
        scores = np.zeros((batch,), "float32")
        done = limits <= 0
        for index in range(steps):
            logits = self((source, tokens[:, : index + 1]), training=False)
            logits = generation.never_vote_padding(logits[:, -1, :])
            log_probs = ops.convert_to_numpy(ops.log_softmax(logits, axis=-1))
            vote = np.where(done, 0, np.argmax(log_probs, axis=-1))
            scores += np.where(done, 0.0, log_probs[np.arange(batch), vote])
            tokens[:, index + 1] = vote
            done |= (vote == end_id) | (index + 1 >= limits)
            if done.all():
                break
        return tokens[:, 1:], scores

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras's TensorFlow trainer builds the model, under a tf.distribute
        # strategy, from one batch reduced with "MEAN" across replicas: the
        # token ids become float averages (which fail the id checks), and
        # under MultiWorkerMirroredStrategy the collective reduce of a nested
        # batch raises. The build needs only shapes and dtypes: one
        # replica's batch has them.
        strategy = getattr(self, "_distribute_strategy", None)
        if strategy is None or iterator is None:
            return super()._maybe_symbolic_build(iterator, data_batch)
        import tensorflow as tf

        def one_replica(value):
            if isinstance(value, tf.distribute.DistributedValues):
                return strategy.experimental_local_results(value)[0]
            return value

        for _, _, batches in iterator:
            data_batch = keras.tree.map_structure(one_replica, next(batches))
            break
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    def train_step(self, *args, **kwargs):
        # (JAX's trainer passes `state` too, and gets `(logs, state)` back;
        # the helper leaves other backends' results as they are.)
        return _reducible_across_workers(super().train_step(*args, **kwargs))

    def test_step(self, *args, **kwargs):
        return _reducible_across_workers(super().test_step(*args, **kwargs))

    def compile(
        self,
        optimizer=None,
        loss=None,
        metrics=None,
        *,
        label_smoothing=0.1,
        warmup_steps=4000,
        learning_rate_scale=1.0,
        **kwargs,
    ):
        """`keras.Model.compile` whose defaults are the paper's recipe.

        With no arguments: Adam(beta_1=0.9, beta_2=0.98, epsilon=1e-9) on
        `TransformerSchedule(d_model, warmup_steps)`, the masked
        cross-entropy with label smoothing 0.1, and masked token accuracy.
        Any argument given replaces its default; `label_smoothing`,
        `warmup_steps` and `learning_rate_scale` tune the defaults.
        """
        if optimizer is None:
            schedule = TransformerSchedule(
                self.d_model, warmup_steps, scale=learning_rate_scale
            )
            optimizer = keras.optimizers.Adam(
                schedule, beta_1=0.9, beta_2=0.98, epsilon=1e-9
            )
        if loss is None:
            loss = MaskedSparseCategoricalCrossentropy(
                label_smoothing=label_smoothing
            )
        if metrics is None:
            metrics = [MaskedAccuracy()]
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def get_compile_config(self):
        # The optimizer, loss and metrics that `compile` resolved, serialized
        # by Keras; `compile_from_config` passes them back explicitly.
        return super().get_compile_config()

    def compile_from_config(self, config):
        # Keras skips compiling models whose `compile` is overridden; ours
        # takes every `keras.Model.compile` argument, so it is safe to call.
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built:
            # Create the optimizer's variables so its saved state can load.
            self.optimizer.build(self.trainable_variables)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "input_vocab_size": self.input_vocab_size,
                "target_vocab_size": self.target_vocab_size,
                "num_layers": self.num_layers,
                "d_model": self.d_model,
                "num_heads": self.num_heads,
                "d_ff": self.d_ff,
                "dropout_rate": self.dropout_rate,
                "max_length": self.max_length,
                "share_embeddings": self.share_embeddings,
                "norm_first": self.norm_first,
                "attention_dropout_rate": self.attention_dropout_rate,
                "activation": self.activation,
                "layer_norm_epsilon": self.layer_norm_epsilon,
            }
        )
        return config


def _reducible_across_workers(logs):
    """Under MultiWorkerMirroredStrategy, Keras's TensorFlow trainer reduces
    each step's logs with `strategy.reduce("MEAN", value, axis=0)`, which
    fails on scalars; as shape-(1,) tensors they reduce to the same scalars.
    Elsewhere the logs are returned as they are."""
    if keras.backend.backend() != "tensorflow":
        return logs
    import tensorflow as tf

    strategy = tf.distribute.get_strategy()
    extended = getattr(strategy, "extended", None)
    multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and (
        getattr(extended, "_in_multi_worker_mode", lambda: False)()
    )
    if not multi_worker:
        return logs
    return {
        name: ops.reshape(value, (1,)) if len(ops.shape(value)) == 0 else value
        for name, value in logs.items()
    }


def _round_up(value, multiple):
    return -(-value // multiple) * multiple


def _compile(function, jit_compile=False):
    """One traced function per shape bucket: a `tf.function` with the
    TensorFlow backend, compiled by XLA with `jit_compile`; other backends
    run the loop as it is (JAX's `while_loop` compiles its body by itself)."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        if not jit_compile:
            return tf.function(function, autograph=False)

        def traced_for_xla(*args):
            with tracing_for_xla():
                return function(*args)

        return tf.function(traced_for_xla, autograph=False, jit_compile=True)
    return function


def _check_strategy(
    strategy, num_beams, length_penalty, temperature, top_k, top_p, vocab,
    use_cache,
):
    """The options of one strategy, checked, as a dict."""
    strategies = ("greedy", "beam", "sample")
    if strategy not in strategies:
        raise ValueError(
            f"`strategy` must be one of {strategies}; received {strategy!r}."
        )
    if not use_cache and strategy != "greedy":
        raise ValueError(
            "`use_cache=False` is the greedy reference only; use "
            f"`use_cache=True` for strategy={strategy!r}."
        )
    if strategy == "greedy":
        return {"strategy": "greedy"}
    if strategy == "beam":
        if not isinstance(num_beams, (int, np.integer)) or not 1 <= num_beams <= vocab // 2:
            raise ValueError(
                f"`num_beams` must be an int in [1, {vocab // 2}]; received "
                f"{num_beams!r}."
            )
        if not length_penalty >= 0:
            raise ValueError(
                f"`length_penalty` must be >= 0; received {length_penalty!r}."
            )
        return {
            "strategy": "beam",
            "num_beams": int(num_beams),
            "length_penalty": float(length_penalty),
        }
    if not temperature > 0:
        raise ValueError(f"`temperature` must be > 0; received {temperature!r}.")
    if top_k is not None and not (
        isinstance(top_k, (int, np.integer)) and 1 <= top_k <= vocab
    ):
        raise ValueError(
            f"`top_k` must be an int in [1, {vocab}] or None; received {top_k!r}."
        )
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"`top_p` must be in (0, 1] or None; received {top_p!r}.")
    return {
        "strategy": "sample",
        "temperature": float(temperature),
        "top_k": None if top_k is None else int(top_k),
        "top_p": None if top_p is None else float(top_p),
    }


def _split_inputs(inputs, shapes=False):
    """`(source, target)` from a tuple, list or dict of tensors or shapes."""
    what = "input_shape" if shapes else "inputs"
    if isinstance(inputs, dict):
        try:
            return inputs["source_ids"], inputs["target_ids"]
        except KeyError:
            raise ValueError(
                f"A dict `{what}` needs the keys 'source_ids' and "
                f"'target_ids'; received keys {sorted(inputs)}."
            ) from None
    is_pair = isinstance(inputs, (tuple, list)) and len(inputs) == 2
    if shapes and is_pair and not all(
        isinstance(s, (tuple, list)) for s in inputs
    ):
        is_pair = False  # a single shape like (batch, length)
    if not is_pair:
        raise ValueError(
            "`Transformer` takes `inputs=(source_ids, target_ids)`, two int "
            "tensors of shape (batch, length); received "
            f"{type(inputs).__name__} {getattr(inputs, 'shape', '')}."
        )
    return inputs[0], inputs[1]
