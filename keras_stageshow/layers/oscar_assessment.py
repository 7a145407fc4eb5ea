import keras
from keras import ops

from keras_stageshow.layers.assessment_round import AssessmentRound
from keras_stageshow.layers.base import StageStack
from keras_stageshow.layers.utils import check_rank
from keras_stageshow.layers.utils import padding_mask_from_ids


@keras.saving.register_keras_serializable(package="keras_stageshow")
class OscarAssessment(StageStack):
    """Oscar award assessment: the Transformer decoder (paper section 3.1).

    The committee starts from rumours (the start token and the tokens voted
    so far), digs into the story (`Preprocess`), then for `num_layers`
    assessment rounds (`AssessmentRound`) asks questions of itself, watches
    the show to answer them and discusses. The result is `dec_output`, which
    `Voting` turns into logits.

    Masking: target id 0 is padding. The look-ahead mask and the target
    padding mask reach every self-attention; the source padding mask
    (`enc_output_mask`, filled by Keras from the `StageShow` output) reaches
    every cross-attention.

    Cached decoding: `compute_cross_attention_cache(enc_output)` projects the
    show once per source; `initial_self_attention_cache(batch, length)`
    gives empty self-attention caches. Calling with both caches and
    `cache_update_index=i` decodes the token(s) at position `i` and returns
    the updated self-attention cache.

    Args:
        vocabulary_size: int, target vocabulary size.
        num_layers, d_model, num_heads, d_ff, dropout_rate, max_length,
        attention_dropout_rate, activation, norm_first, layer_norm_epsilon,
        token_embedding: as in `StageShow`.
        **kwargs: base layer keyword arguments.

    Call arguments:
        target_ids: int `(batch, target_len)`.
        enc_output: `(batch, source_len, d_model)`, the show.
        enc_output_mask: optional boolean `(batch, source_len)`.
        self_attention_cache: optional list, one cache per round.
        cross_attention_cache: optional list, one cache per round.
        cache_update_index: int, position of `target_ids`' first token.
        return_attention_scores: bool, also return a dict of per-round lists
            `{"ask_questions": [...], "watch_show": [...]}`.
        training: bool, whether dropout is active.

    Returns `dec_output`, then the updated self-attention caches if given,
    then the attention weights if asked for.

    Example:
    >>> assessment = OscarAssessment(vocabulary_size=100, num_layers=2,
    ...                              d_model=16, num_heads=2, d_ff=32)
    >>> show = np.ones((1, 6, 16), "float32")
    >>> assessment(np.array([[1, 5, 6]]), show).shape
    (1, 3, 16)
    """

    def build(self, target_ids_shape, enc_output_shape):
        hidden_shape = self._build_preprocess_and_norm(target_ids_shape)
        check_rank(
            enc_output_shape, 3, "enc_output", "of shape (batch, source_len, d_model)"
        )
        self.assessment_rounds = []
        for i in range(self.num_layers):
            assessment_round = AssessmentRound(
                name=f"assessment_round_{i}", **self._round_kwargs()
            )
            assessment_round.build(hidden_shape, enc_output_shape)
            self.assessment_rounds.append(assessment_round)
        self.built = True

    def call(
        self,
        target_ids,
        enc_output,
        enc_output_mask=None,
        self_attention_cache=None,
        cross_attention_cache=None,
        cache_update_index=None,
        return_attention_scores=False,
        training=None,
    ):
        cache_args = (self_attention_cache, cross_attention_cache, cache_update_index)
        caching = self_attention_cache is not None
        if any(a is not None for a in cache_args) and any(a is None for a in cache_args):
            raise ValueError(
                "Cached decoding needs `self_attention_cache`, "
                "`cross_attention_cache` and `cache_update_index` together."
            )
        # (batch, target_len)
        target_mask = None if caching else padding_mask_from_ids(target_ids)
        # Rumours -> dig into the story. (batch, target_len, d_model)
        x = self.preprocess(
            target_ids,
            start_index=cache_update_index if caching else 0,
            training=training,
        )
        new_caches = []
        scores = {"ask_questions": [], "watch_show": []}
        for i, assessment_round in enumerate(self.assessment_rounds):
            outputs = assessment_round(
                x,
                enc_output,
                target_mask=target_mask,
                enc_output_mask=enc_output_mask,
                self_attention_cache=self_attention_cache[i] if caching else None,
                cross_attention_cache=cross_attention_cache[i] if caching else None,
                cache_update_index=cache_update_index,
                return_attention_scores=return_attention_scores,
                training=training,
            )
            outputs = outputs if isinstance(outputs, tuple) else (outputs,)
            x = outputs[0]
            if caching:
                new_caches.append(outputs[1])
            if return_attention_scores:
                for key, value in outputs[-1].items():
                    scores[key].append(value)
        x = self._finish(x)
        results = (x,)
        if caching:
            results += (new_caches,)
        if return_attention_scores:
            results += (scores,)
        return results[0] if len(results) == 1 else results

    def compute_cross_attention_cache(self, enc_output):
        """One read-only cache per round: the show's projected keys/values."""
        return [
            assessment_round.watch_show.compute_cache(enc_output)
            for assessment_round in self.assessment_rounds
        ]

    def initial_self_attention_cache(self, batch_size, length):
        """One zero cache per round. # (batch, 2, length, num_heads, head_dim)"""
        shape = (
            batch_size,
            2,
            length,
            self.num_heads,
            self.d_model // self.num_heads,
        )
        return [
            ops.zeros(shape, dtype=self.compute_dtype)
            for _ in range(self.num_layers)
        ]

    def compute_mask(self, target_ids, enc_output=None, mask=None, **kwargs):
        return padding_mask_from_ids(target_ids)

    def compute_output_shape(self, target_ids_shape, enc_output_shape=None):
        return (*target_ids_shape, self.d_model)
