import keras

from keras_stageshow.layers.base import StageStack
from keras_stageshow.layers.practice_round import PracticeRound
from keras_stageshow.layers.utils import padding_mask_from_ids


@keras.saving.register_keras_serializable(package="keras_stageshow")
class StageShow(StageStack):
    """Stage show: the Transformer encoder (paper section 3.1).

    The troupe turns a script into a performance: `Preprocess` (embedding,
    scale, positional encoding, dropout), then `num_layers` practice rounds
    (`PracticeRound`: rehearsal + crew discussion). The result is the show,
    `enc_output`, which the Oscar assessment watches.

    Masking: token id 0 is padding. The padding mask (`token_ids != 0`)
    reaches every round's self-attention, and `enc_output` carries it as its
    Keras mask, so the `OscarAssessment` that watches the show receives it
    as `enc_output_mask` without further wiring.

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
        return_attention_scores: bool, also return a list with each round's
            attention weights `(batch, num_heads, source_len, source_len)`.
        training: bool, whether dropout is active.

    Example:
    >>> show = StageShow(vocabulary_size=100, num_layers=2, d_model=16,
    ...                  num_heads=2, d_ff=32)
    >>> show(np.array([[5, 6, 7, 0]])).shape
    (1, 4, 16)
    """

    def build(self, token_ids_shape):
        hidden_shape = self._build_preprocess_and_norm(token_ids_shape)
        self.practice_rounds = []
        for i in range(self.num_layers):
            practice_round = PracticeRound(
                name=f"practice_round_{i}", **self._round_kwargs()
            )
            practice_round.build(hidden_shape)
            self.practice_rounds.append(practice_round)
        self.built = True

    def call(self, token_ids, return_attention_scores=False, training=None):
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
        x = self._finish(x)
        return (x, all_scores) if return_attention_scores else x

    def compute_mask(self, token_ids, mask=None):
        return padding_mask_from_ids(token_ids)

    def compute_output_shape(self, token_ids_shape):
        return (*token_ids_shape, self.d_model)
