"""`OscarAssessment`: the decoder, and its cached decoding step."""

import keras

from keras_stageshow.layers.assessment_round import AssessmentRound
from keras_stageshow.layers.masks import padding_mask_from_ids
from keras_stageshow.layers.preprocess import Preprocess
from keras_stageshow.layers.utils import check_heads
from keras_stageshow.layers.utils import check_positive_int
from keras_stageshow.layers.utils import check_rank
from keras_stageshow.layers.utils import check_rate


@keras.saving.register_keras_serializable(package="keras_stageshow")
class OscarAssessment(keras.layers.Layer):
    """Oscar award assessment: the Transformer decoder (paper section 3.1).

    The committee starts from rumours (the start token and the tokens voted
    so far), digs into the story (`Preprocess`), then for `num_layers`
    assessment rounds (`AssessmentRound`) asks questions of itself, watches
    the show to answer them and discusses. The result is `dec_output`, which
    `Voting` turns into logits.

    Masking: target id 0 is padding. The look-ahead mask and the target
    padding mask (`target_mask`, by default made from the ids) reach every
    self-attention; the source padding mask (`enc_output_mask`, passed by
    the caller or filled by Keras from the `StageShow` output) reaches every
    cross-attention.

    Cached decoding (the awards ceremony): `compute_cross_attention_cache`
    projects the show once per source, `empty_self_attention_cache` gives
    empty self-attention caches, and `call_with_cache` decodes the token at
    one position and returns `(dec_output, self_attention_cache)`.

    Args:
        vocabulary_size: int, target vocabulary size.
        num_layers, d_model, num_heads, d_ff, dropout_rate, max_length,
        attention_dropout_rate, activation, norm_first, layer_norm_epsilon,
        token_embedding: as in `StageShow`.
        **kwargs: base layer keyword arguments.

    Call arguments:
        target_ids: int `(batch, target_len)`.
        enc_output: `(batch, source_len, d_model)`, the show.
        target_mask: optional boolean `(batch, target_len)`; by default
            `target_ids != 0`.
        enc_output_mask: optional boolean `(batch, source_len)`.
        return_attention_scores: bool, also return a dict of per-round lists
            `{"ask_questions": [...], "watch_show": [...]}`.
        training: bool, whether dropout is active.

    Returns `dec_output` `(batch, target_len, d_model)`, or
    `(dec_output, scores)`.

    Example:
    >>> assessment = OscarAssessment(vocabulary_size=100, num_layers=2,
    ...                              d_model=16, num_heads=2, d_ff=32)
    >>> show = np.ones((1, 6, 16), "float32")
    >>> assessment(np.array([[1, 5, 6]]), show).shape
    (1, 3, 16)

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
        self.vocabulary_size = check_positive_int(vocabulary_size, "vocabulary_size")
        self.num_layers = check_positive_int(num_layers, "num_layers")
        self.d_model = check_positive_int(d_model, "d_model")
        self.num_heads = check_positive_int(num_heads, "num_heads")
        check_heads(self.d_model, self.num_heads)
        self.d_ff = check_positive_int(d_ff, "d_ff")
        self.dropout_rate = check_rate(dropout_rate, "dropout_rate")
        self.max_length = check_positive_int(max_length, "max_length")
        self.attention_dropout_rate = check_rate(
            attention_dropout_rate, "attention_dropout_rate"
        )
        self.activation = keras.activations.get(activation)
        self.norm_first = bool(norm_first)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.supports_masking = True
        # Rumours -> dig into the story.
        self.preprocess = Preprocess(
            vocabulary_size,
            d_model,
            max_length=max_length,
            dropout_rate=dropout_rate,
            token_embedding=token_embedding,
            dtype=self.dtype_policy,
            name="preprocess",
        )
        self.final_norm = None
        if self.norm_first:
            self.final_norm = keras.layers.LayerNormalization(
                epsilon=layer_norm_epsilon, dtype=self.dtype_policy, name="final_norm"
            )

    def build(self, target_ids_shape, enc_output_shape):
        check_rank(target_ids_shape, 2, "token_ids", "of shape (batch, seq_len)")
        check_rank(
            enc_output_shape, 3, "enc_output", "of shape (batch, source_len, d_model)"
        )
        self.preprocess.build(target_ids_shape)
        hidden_shape = (*target_ids_shape, self.d_model)
        self.assessment_rounds = []
        for i in range(self.num_layers):
            assessment_round = AssessmentRound(
                self.num_heads,
                self.d_ff,
                dropout_rate=self.dropout_rate,
                attention_dropout_rate=self.attention_dropout_rate,
                activation=self.activation,
                norm_first=self.norm_first,
                layer_norm_epsilon=self.layer_norm_epsilon,
                dtype=self.dtype_policy,
                name=f"assessment_round_{i}",
            )
            assessment_round.build(hidden_shape, enc_output_shape)
            self.assessment_rounds.append(assessment_round)
        if self.final_norm is not None:
            self.final_norm.build(hidden_shape)
        self.built = True

    def call(
        self,
        target_ids,
        enc_output,
        target_mask=None,
        enc_output_mask=None,
        return_attention_scores=False,
        training=None,
    ):
        if target_mask is None:
            # (batch, target_len)
            target_mask = padding_mask_from_ids(target_ids)
        # Rumours -> dig into the story. (batch, target_len, d_model)
        x = self.preprocess(target_ids, training=training)
        scores = {"ask_questions": [], "watch_show": []}
        for assessment_round in self.assessment_rounds:
            x = assessment_round(
                x,
                enc_output,
                target_mask=target_mask,
                enc_output_mask=enc_output_mask,
                return_attention_scores=return_attention_scores,
                training=training,
            )
            if return_attention_scores:
                x, round_scores = x
                for key, value in round_scores.items():
                    scores[key].append(value)
        if self.final_norm is not None:
            x = self.final_norm(x)
        return (x, scores) if return_attention_scores else x

    def compute_cross_attention_cache(self, enc_output):
        """One read-only cache per round: the show's projected keys/values."""
        return [
            assessment_round.watch_show.compute_cache(enc_output)
            for assessment_round in self.assessment_rounds
        ]

    def empty_self_attention_cache(self, batch_size, length, cache_write="slice_update"):
        """One zero self-attention cache per round, for `length` steps."""
        return [
            assessment_round.ask_questions.empty_cache(batch_size, length, cache_write)
            for assessment_round in self.assessment_rounds
        ]

    def call_with_cache(
        self, target_ids, self_attention_cache, cross_attention_cache,
        cache_update_index, enc_output_mask, cache_write="slice_update",
    ):
        """One step of the awards ceremony: `target_ids` `(batch, 1)` is the
        token at position `cache_update_index`. Returns
        `(dec_output (batch, 1, d_model), self_attention_cache)`; the
        `cache_write` op is explained in `layers/kv_cache.py`."""
        x = self.preprocess(target_ids, start_index=cache_update_index, training=False)
        new_caches = []
        for assessment_round, self_cache, cross_cache in zip(
            self.assessment_rounds, self_attention_cache, cross_attention_cache
        ):
            x, self_cache = assessment_round.call_with_cache(
                x, self_cache, cross_cache, cache_update_index, enc_output_mask,
                cache_write,
            )
            new_caches.append(self_cache)
        if self.final_norm is not None:
            x = self.final_norm(x)
        return x, new_caches

    def compute_mask(self, target_ids, enc_output=None, target_mask=None, **kwargs):
        return padding_mask_from_ids(target_ids) if target_mask is None else target_mask

    def compute_output_shape(self, target_ids_shape, enc_output_shape=None):
        return (*target_ids_shape, self.d_model)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "num_layers": self.num_layers,
                "d_model": self.d_model,
                "num_heads": self.num_heads,
                "d_ff": self.d_ff,
                "dropout_rate": self.dropout_rate,
                "max_length": self.max_length,
                "attention_dropout_rate": self.attention_dropout_rate,
                "activation": keras.activations.serialize(self.activation),
                "norm_first": self.norm_first,
                "layer_norm_epsilon": self.layer_norm_epsilon,
            }
        )
        return config
