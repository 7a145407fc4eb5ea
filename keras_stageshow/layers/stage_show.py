"""`StageShow`: the encoder."""

import keras

from keras_stageshow.layers.arguments import PREPROCESS_ARGUMENTS
from keras_stageshow.layers.arguments import STACK_ARGUMENTS
from keras_stageshow.layers.arguments import arguments_config
from keras_stageshow.layers.arguments import build_rounds
from keras_stageshow.layers.arguments import final_norm
from keras_stageshow.layers.arguments import store_arguments
from keras_stageshow.layers.arguments import sublayer_arguments
from keras_stageshow.layers.masks import padding_mask_from_ids
from keras_stageshow.layers.practice_round import PracticeRound
from keras_stageshow.layers.preprocess import Preprocess
from keras_stageshow.layers.utils import check_rank


@keras.saving.register_keras_serializable(package="keras_stageshow")
class StageShow(keras.layers.Layer):
    """Stage show: the Transformer encoder (paper section 3.1).

    The troupe turns a script into a performance: `Preprocess` (embedding,
    scale, positional encoding, dropout), then `num_layers` practice rounds
    (`PracticeRound`: rehearsal + crew discussion). The result is the show,
    `enc_output`, which the Oscar assessment watches.

    Masking: token id 0 is padding. The padding mask is made from the ids
    here (or passed by the caller that already has it, as `Transformer`
    does) and reaches every round's self-attention; `enc_output` carries it
    as its Keras mask.

    Args:
        vocabulary_size: int, source vocabulary size.
        num_layers: int, number of practice rounds `N` (6).
        d_model: int, model width (512).
        num_heads: int, attention heads `h` (8); must divide `d_model`.
        d_ff: int, feed-forward width (2048).
        dropout_rate: float, dropout on embeddings and sub-layer outputs (0.1).
        max_length: int, longest source sequence accepted.
        attention_dropout_rate: float, dropout on attention weights (0).
        activation: feed-forward activation (`"relu"`).
        norm_first: bool, pre-norm rounds plus a final LayerNorm.
        layer_norm_epsilon: float.
        token_embedding: optional shared `keras.layers.Embedding`
            (not serialized, see `Preprocess`).
        **kwargs: base layer keyword arguments.

    Call arguments:
        token_ids: int `(batch, source_len)`.
        padding_mask: optional boolean `(batch, source_len)`; by default
            `token_ids != 0`.
        return_attention_scores: bool, also return a list with each round's
            attention weights `(batch, num_heads, source_len, source_len)`.
        training: bool, whether dropout is active.

    Returns `enc_output` `(batch, source_len, d_model)`, or
    `(enc_output, scores)`.

    Example:
    >>> show = StageShow(vocabulary_size=100, num_layers=2, d_model=16,
    ...                  num_heads=2, d_ff=32)
    >>> show(np.array([[5, 6, 7, 0]])).shape
    (1, 4, 16)

    References:
        Vaswani et al., "Attention Is All You Need", 2017, section 3.1.
    """

    def __init__(
        self,
        vocabulary_size,
        num_layers=6,
        d_model=512,
        num_heads=8,
        d_ff=2048,
        dropout_rate=0.1,
        max_length=512,
        attention_dropout_rate=0.0,
        activation="relu",
        norm_first=False,
        layer_norm_epsilon=1e-5,
        token_embedding=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        store_arguments(self, locals(), STACK_ARGUMENTS)
        self.supports_masking = True
        # Ideas -> story -> script -> the performers' material.
        self.preprocess = Preprocess(
            **sublayer_arguments(self, PREPROCESS_ARGUMENTS),
            token_embedding=token_embedding,
            name="preprocess",
        )
        # Pre-norm only: the LayerNorm after the last practice round.
        self.final_norm = final_norm(self)

    def build(self, token_ids_shape):
        check_rank(token_ids_shape, 2, "token_ids", "of shape (batch, seq_len)")
        self.preprocess.build(token_ids_shape)
        hidden_shape = (*token_ids_shape, self.d_model)
        # Practice rounds: rehearsal + crew discussion, `num_layers` times.
        self.practice_rounds = build_rounds(
            self, PracticeRound, "practice_round", hidden_shape
        )
        if self.final_norm is not None:
            self.final_norm.build(hidden_shape)
        self.built = True

    def call(
        self, token_ids, padding_mask=None, return_attention_scores=False,
        training=None,
    ):
        if padding_mask is None:
            # (batch, source_len)
            padding_mask = padding_mask_from_ids(token_ids)
        # (batch, source_len, d_model)
        x = self.preprocess(token_ids, training=training)
        all_scores = []
        for practice_round in self.practice_rounds:
            x = practice_round(
                x,
                padding_mask=padding_mask,
                return_attention_scores=return_attention_scores,
                training=training,
            )
            if return_attention_scores:
                x, scores = x
                all_scores.append(scores)
        if self.final_norm is not None:
            x = self.final_norm(x)
        return (x, all_scores) if return_attention_scores else x

    def compute_mask(self, token_ids, padding_mask=None, mask=None):
        return padding_mask_from_ids(token_ids) if padding_mask is None else padding_mask

    def compute_output_shape(self, token_ids_shape):
        return (*token_ids_shape, self.d_model)

    def get_config(self):
        config = super().get_config()
        config.update(arguments_config(self, STACK_ARGUMENTS))
        return config
