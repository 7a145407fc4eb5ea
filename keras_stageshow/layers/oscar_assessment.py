"""`OscarAssessment`: the decoder, and its cached decoding step."""

import keras

from keras_stageshow.layers.arguments import PREPROCESS_ARGUMENTS
from keras_stageshow.layers.arguments import STACK_ARGUMENTS
from keras_stageshow.layers.arguments import arguments_config
from keras_stageshow.layers.arguments import build_rounds
from keras_stageshow.layers.arguments import final_norm
from keras_stageshow.layers.arguments import store_arguments
from keras_stageshow.layers.arguments import sublayer_arguments
from keras_stageshow.layers.assessment_round import AssessmentRound
from keras_stageshow.layers.masks import padding_mask_from_ids
from keras_stageshow.layers.preprocess import Preprocess
from keras_stageshow.layers.utils import check_rank


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
    empty self-attention caches, and `call` with both caches decodes the
    token at one position (`self_attention_cache_update_index`).

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
        self_attention_cache: optional list, one `AskQuestions` cache a
            round (`empty_self_attention_cache`), for one decoding step:
            `target_ids` `(batch, 1)` is the token at
            `self_attention_cache_update_index` (int).
        cross_attention_cache: optional list, one `WatchShow` cache a round
            (`compute_cross_attention_cache`); then `enc_output` is not
            needed.
        cache_write: how a step writes the self-attention caches,
            `"slice_update"` or `"in_place"` (`layers/kv_cache.py`).

    Returns `dec_output` `(batch, target_len, d_model)`, or
    `(dec_output, scores)`, or with caches
    `(dec_output, self_attention_cache, cross_attention_cache)`, the first
    updated, the second as given.

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
        store_arguments(self, locals(), STACK_ARGUMENTS)
        self.supports_masking = True
        # Rumours -> dig into the story.
        self.preprocess = Preprocess(
            **sublayer_arguments(self, PREPROCESS_ARGUMENTS),
            token_embedding=token_embedding,
            name="preprocess",
        )
        # Pre-norm only: the LayerNorm after the last assessment round.
        self.final_norm = final_norm(self)

    def build(self, target_ids_shape, enc_output_shape):
        check_rank(target_ids_shape, 2, "token_ids", "of shape (batch, seq_len)")
        check_rank(
            enc_output_shape, 3, "enc_output", "of shape (batch, source_len, d_model)"
        )
        self.preprocess.build(target_ids_shape)
        hidden_shape = (*target_ids_shape, self.d_model)
        # Assessment rounds: ask, watch, discuss, `num_layers` times.
        self.assessment_rounds = build_rounds(
            self, AssessmentRound, "assessment_round", hidden_shape, enc_output_shape
        )
        if self.final_norm is not None:
            self.final_norm.build(hidden_shape)
        self.built = True

    def call(
        self,
        target_ids,
        enc_output=None,
        target_mask=None,
        enc_output_mask=None,
        return_attention_scores=False,
        training=None,
        self_attention_cache=None,
        self_attention_cache_update_index=None,
        cross_attention_cache=None,
        cache_write="slice_update",
    ):
        if target_mask is None:
            # (batch, target_len)
            target_mask = padding_mask_from_ids(target_ids)
        index = self_attention_cache_update_index
        cached = self_attention_cache is not None or cross_attention_cache is not None
        no_caches = [None] * self.num_layers
        # Rumours -> dig into the story. (batch, target_len, d_model)
        x = self.preprocess(
            target_ids, start_index=0 if index is None else index, training=training
        )
        scores = {"ask_questions": [], "watch_show": []}
        updated_caches = []
        for assessment_round, self_cache, cross_cache in zip(
            self.assessment_rounds,
            no_caches if self_attention_cache is None else self_attention_cache,
            no_caches if cross_attention_cache is None else cross_attention_cache,
        ):
            x = assessment_round(
                x,
                enc_output,
                target_mask=target_mask,
                enc_output_mask=enc_output_mask,
                return_attention_scores=return_attention_scores,
                training=training,
                self_attention_cache=self_cache,
                self_attention_cache_update_index=index,
                cross_attention_cache=cross_cache,
                cache_write=cache_write,
            )
            if cached:
                # The self-attention cache updated; the show's is read only.
                x, self_cache, _ = x
                updated_caches.append(self_cache)
            elif return_attention_scores:
                x, round_scores = x
                for key, value in round_scores.items():
                    scores[key].append(value)
        if self.final_norm is not None:
            x = self.final_norm(x)
        if cached:
            if self_attention_cache is not None:
                self_attention_cache = updated_caches
            return x, self_attention_cache, cross_attention_cache
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

    def compute_mask(self, target_ids, enc_output=None, target_mask=None, **kwargs):
        return padding_mask_from_ids(target_ids) if target_mask is None else target_mask

    def compute_output_shape(self, target_ids_shape, enc_output_shape=None):
        return (*target_ids_shape, self.d_model)

    def get_config(self):
        config = super().get_config()
        config.update(arguments_config(self, STACK_ARGUMENTS))
        return config
