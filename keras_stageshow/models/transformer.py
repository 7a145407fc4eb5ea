"""`Transformer`: the stage show, the Oscar assessment and the vote, with
the paper's training recipe; decoding is the awards ceremony's
(`keras_stageshow/decoding/`)."""

import keras
import keras_hub

from keras_stageshow import decoding
from keras_stageshow.decoding.ceremony import forget_ceremonies
from keras_stageshow.layers.masks import padding_mask_from_ids
from keras_stageshow.layers.oscar_assessment import OscarAssessment
from keras_stageshow.layers.stage_show import StageShow
from keras_stageshow.layers.utils import check_heads
from keras_stageshow.layers.utils import check_positive_int
from keras_stageshow.layers.utils import check_rank
from keras_stageshow.layers.utils import split_source_target
from keras_stageshow.layers.voting import Voting
from keras_stageshow.models.quantization import without_layers
from keras_stageshow.training.distribute import DistributedTrainingFixes
from keras_stageshow.training.paper_recipe import LABEL_SMOOTHING
from keras_stageshow.training.paper_recipe import LEARNING_RATE_SCALE
from keras_stageshow.training.paper_recipe import WARMUP_STEPS
from keras_stageshow.training.paper_recipe import paper_compile_arguments


@keras.saving.register_keras_serializable(package="keras_stageshow")
class Transformer(DistributedTrainingFixes, keras_hub.models.Backbone):
    """The stage show and the Oscar assessment: the encoder-decoder Transformer.

    `StageShow` (encoder) performs the source; `OscarAssessment` (decoder)
    assesses the target so far while watching the show; `Voting` projects
    onto the target vocabulary. The defaults are the paper's base model
    (N=6, d_model=512, d_ff=2048, h=8, dropout 0.1).

    Masking: token id 0 is padding. `call` makes the source and target
    padding masks once and passes them down (`layers/masks.py`): no position
    attends to padding, and the decoder never to the future.

    A `keras_hub.models.Backbone`: `save_to_preset(dir)` writes keras-hub's
    preset files and `Transformer.from_preset(dir_or_handle)` loads them
    (`Translator.save_to_preset` adds the tokenizers).

    Weight sharing: the target embedding matrix doubles as the pre-softmax
    projection (`Voting`), as in the paper (section 3.4);
    `share_embeddings=True` makes it the source embedding too (one
    vocabulary for both languages).

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

        # Both stacks take the same shape arguments.
        stack_kwargs = {name: getattr(self, name) for name in _STACK_ARGUMENTS}
        stack_kwargs["dtype"] = self.dtype_policy
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
        # Ids are checked where they enter each stack, under the user's names.
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
        source_shape, target_shape = split_source_target(input_shape, shapes=True)
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
        source_ids, target_ids = split_source_target(inputs)
        # The masks, made once here and passed down. (batch, len)
        source_mask = padding_mask_from_ids(source_ids)
        target_mask = padding_mask_from_ids(target_ids)
        # The show. (batch, source_len, d_model)
        enc_output = self.stage_show(
            source_ids,
            padding_mask=source_mask,
            return_attention_scores=return_attention_scores,
            training=training,
        )
        if return_attention_scores:
            enc_output, rehearsal_scores = enc_output
        # The assessment. (batch, target_len, d_model)
        dec_output = self.oscar_assessment(
            target_ids,
            enc_output,
            target_mask=target_mask,
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

    def call_encoder(self, source_ids):
        """The show, performed once for decoding (`training=False`).

        Returns `(enc_output, source_mask)`: the show
        `(batch, source_len, d_model)` and the source padding mask
        `(batch, source_len)` every decoding step needs.
        """
        # (batch, source_len)
        source_mask = padding_mask_from_ids(source_ids)
        # (batch, source_len, d_model)
        enc_output = self.stage_show(
            source_ids, padding_mask=source_mask, training=False
        )
        return enc_output, source_mask

    def call_decoder_with_cache(
        self, rumour_ids, source_mask, caches, index, cache_write="slice_update",
        voting_kernel=None,
    ):
        """One cached step of the awards ceremony: the Oscar assessment of
        the rumour at position `index` with the caches, then Voting.

        Args:
            rumour_ids: int `(batch, 1)`, the token at position `index`.
            source_mask: boolean `(batch, source_len)`, from `call_encoder`.
            caches: `(self_attention_cache, cross_attention_cache)`, one
                cache a round each: the first from
                `oscar_assessment.empty_self_attention_cache`, then as the
                previous step returned it; the second from
                `oscar_assessment.compute_cross_attention_cache(enc_output)`.
            index: int, the step's position.
            cache_write: how the step writes the self-attention caches,
                `"slice_update"` or `"in_place"` (`layers/kv_cache.py`).
            voting_kernel: optional, `voting.tied_kernel()` made once per
                decoding run, so a step does not transpose the embeddings.

        Returns `(logits, caches)`: the next token's logits
        `(batch, target_vocab_size)`, float32, and the caches, the
        self-attention ones updated.
        """
        self_caches, cross_caches = caches
        # (batch, 1, d_model); the self-attention caches updated.
        dec_output, self_caches, cross_caches = self.oscar_assessment(
            rumour_ids,
            enc_output_mask=source_mask,
            self_attention_cache=self_caches,
            self_attention_cache_update_index=index,
            cross_attention_cache=cross_caches,
            cache_write=cache_write,
            training=False,
        )
        # (batch, target_vocab_size)
        logits = self.voting(dec_output, kernel=voting_kernel)[:, 0, :]
        return logits, (self_caches, cross_caches)

    def attention_scores(self, inputs):
        """Attention weights of every round, for one batch (for plotting).

        Returns a dict of lists with one entry per round:
        `"rehearsal"` (encoder self-attention) and `"ask_questions"` (decoder
        self-attention) `(batch, num_heads, len, len)`, and `"watch_show"`
        (cross-attention) `(batch, num_heads, target_len, source_len)`.
        """
        _, scores = self(inputs, training=False, return_attention_scores=True)
        return scores

    def generate(self, source_ids, **options):
        """The awards ceremony: autoregressive decoding from source ids.

        Starting from the start token, each step votes the next token and
        feeds it back, until a row votes `end_id` or reaches its limit (by
        default its source length + 50). The key/value cache makes a step
        cost one token's work; the loop is traced once per shape bucket,
        with XLA unless `jit_compile=False`. The options (`max_new_tokens`,
        `strategy` ("greedy", "beam", "sample"), `num_beams`,
        `length_penalty`, `temperature`, `top_k`, `top_p`, `seed`,
        `start_id`, `end_id`, `use_cache`, `return_scores`, `jit_compile`)
        are documented at `keras_stageshow.decoding.generate`.

        Returns an int32 numpy array `(batch, steps)` of the voted ids
        (without the start token, 0 after `end_id`), and with
        `return_scores` also each row's float32 score.
        """
        return decoding.generate(self, source_ids, **options)

    def quantize(self, mode=None, config=None, filters=None, **kwargs):
        """`keras.Model.quantize`, with the vote's tied embeddings kept float.

        Keras quantizes every layer that can be (Dense, EinsumDense and
        Embedding in this model); the embedding the vote is tied to stays
        float, because the vote multiplies by its matrix
        (`models/quantization.py` says why). With `share_embeddings` it is
        the source embedding too. The cached decoding loops are dropped, so
        `generate` decodes with the quantized kernels. `Translator.quantize`
        calls this: Keras's `Model.quantize` of the task would quantize the
        backbone's layers itself, past this override.

        Args:
            mode: `"int8"`, `"int4"`, `"float8"`, ... (Keras's modes).
            config: optional `keras.quantizers.QuantizationConfig`.
            filters: which layers to quantize, as Keras documents: None
                (all), a regex string or a list of them (matched with
                `re.search` on layer names), or a callable `layer -> bool`.
            **kwargs: `keras.Model.quantize` keyword arguments.

        Example:
        >>> model.quantize("int8")                    # the tied vote stays float
        >>> model.quantize("int8", filters="_dense$")  # the feed-forwards only
        """
        tied = self.voting.token_embedding
        kept = [] if tied is None else [tied]
        super().quantize(
            mode, config=config, filters=without_layers(filters, kept), **kwargs
        )
        forget_ceremonies(self)

    def compile(
        self,
        optimizer=None,
        loss=None,
        metrics=None,
        *,
        label_smoothing=LABEL_SMOOTHING,
        warmup_steps=WARMUP_STEPS,
        learning_rate_scale=LEARNING_RATE_SCALE,
        cooldown_steps=None,
        **kwargs,
    ):
        """`keras.Model.compile` whose defaults are the paper's recipe.

        With no arguments: Adam(beta_1=0.9, beta_2=0.98, epsilon=1e-9) on
        `TransformerSchedule(d_model, warmup_steps)` (as `FusedAdam`: Keras's
        Adam, one kernel a variable on TensorFlow), the masked
        cross-entropy with label smoothing 0.1, and masked token accuracy
        (`training/paper_recipe.py`). Any argument given replaces its
        default; `label_smoothing`, `warmup_steps` and
        `learning_rate_scale` tune the defaults, and `cooldown_steps=(start,
        end)` has the learning rate fall linearly from iteration `start` to
        zero at iteration `end`, the number of steps training will take
        (`TransformerSchedule`; `training.cooldown_steps_for`).
        """
        super().compile(
            **paper_compile_arguments(
                self.d_model, optimizer, loss, metrics, label_smoothing,
                warmup_steps, learning_rate_scale, cooldown_steps,
            ),
            **kwargs,
        )

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
        config.update({name: getattr(self, name) for name in _CONFIG})
        return config

    @classmethod
    def from_config(cls, config):
        # Built at once, for any sequence lengths: keras-hub's preset loader
        # (`Transformer.from_preset`) loads the weights straight after
        # `from_config`, without the build shapes a `.keras` file keeps.
        model = super().from_config(config)
        model.build(((None, None), (None, None)))
        return model


# The arguments `StageShow` and `OscarAssessment` share with the model.
_STACK_ARGUMENTS = (
    "num_layers", "d_model", "num_heads", "d_ff", "dropout_rate", "max_length",
    "attention_dropout_rate", "activation", "norm_first", "layer_norm_epsilon",
)
# Every constructor argument, for `get_config`.
_CONFIG = ("input_vocab_size", "target_vocab_size", "share_embeddings") + _STACK_ARGUMENTS
