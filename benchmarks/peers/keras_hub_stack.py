"""Peer 1: the keras-hub stack, built the way keras-hub's translation example
builds it: `TokenAndPositionEmbedding` + `TransformerEncoder` x N +
`TransformerDecoder` x N + `Dense`, as a functional Keras model; decoding
with keras-hub's own cache (`TransformerDecoder`'s self- and cross-attention
caches, filled the way keras-hub's `BartSeq2SeqLM` fills them) and its
`GreedySampler`."""

import keras
import keras_hub
from keras import ops


def keras_hub_translator(
    vocabulary_size, num_layers=3, d_model=256, num_heads=8, d_ff=1024,
    max_length=128, dropout_rate=0.1,
):
    source = keras.Input((None,), dtype="int32", name="source_ids")
    target = keras.Input((None,), dtype="int32", name="target_ids")
    x = keras_hub.layers.TokenAndPositionEmbedding(
        vocabulary_size, max_length, d_model, mask_zero=True, name="source_embedding"
    )(source)
    for i in range(num_layers):
        x = keras_hub.layers.TransformerEncoder(
            d_ff, num_heads, dropout=dropout_rate, name=f"encoder_{i}"
        )(x)
    y = keras_hub.layers.TokenAndPositionEmbedding(
        vocabulary_size, max_length, d_model, mask_zero=True, name="target_embedding"
    )(target)
    for i in range(num_layers):
        y = keras_hub.layers.TransformerDecoder(
            d_ff, num_heads, dropout=dropout_rate, name=f"decoder_{i}"
        )(y, x)
    logits = keras.layers.Dense(vocabulary_size, name="logits")(y)
    return keras.Model([source, target], logits, name="keras_hub_stack")


def compile_peer(model, jit_compile):
    """Adam and cross-entropy over real tokens, as the example trains."""
    model.compile(
        optimizer=keras.optimizers.Adam(1e-4, beta_2=0.98, epsilon=1e-9),
        loss=keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, ignore_class=0
        ),
        jit_compile=jit_compile,
    )
    return model


def cached_greedy_function(model, num_layers, num_heads, steps, start_id=2, jit_compile=False):
    """keras-hub's cached greedy decoding of `steps` tokens, as a compiled
    function `source_ids (batch, source_len) -> ids (batch, steps)`.

    Mirrors `BartSeq2SeqLM.generate_step`: encode, run the decoder once over
    the whole prompt to fill both caches (`*_cache_update_index=0`), then
    `GreedySampler` feeds one token per step through the decoder with the
    self-attention cache growing and the cross-attention cache reused.
    """
    import tensorflow as tf

    source_embedding = model.get_layer("source_embedding")
    target_embedding = model.get_layer("target_embedding")
    encoders = [model.get_layer(f"encoder_{i}") for i in range(num_layers)]
    decoders = [model.get_layer(f"decoder_{i}") for i in range(num_layers)]
    logits_layer = model.get_layer("logits")
    sampler = keras_hub.samplers.GreedySampler()

    def decode(token_ids, start, encoded, source_mask, self_cache, cross_cache, cross_index):
        y = target_embedding(token_ids, start_index=start)
        self_caches, cross_caches = [], []
        for i, decoder in enumerate(decoders):
            y, layer_self, layer_cross = decoder(
                y,
                encoded,
                encoder_padding_mask=source_mask,
                self_attention_cache=self_cache[:, i, ...],
                self_attention_cache_update_index=start,
                cross_attention_cache=cross_cache[:, i, ...],
                cross_attention_cache_update_index=cross_index,
            )
            self_caches.append(layer_self)
            cross_caches.append(layer_cross)
        self_cache = ops.stack(self_caches, axis=1)
        if cross_index is not None:
            cross_cache = ops.stack(cross_caches, axis=1)
        return logits_layer(y), y, self_cache, cross_cache

    def generate(source_ids):
        batch = ops.shape(source_ids)[0]
        source_mask = ops.not_equal(source_ids, 0)
        x = source_embedding(source_ids)
        for encoder in encoders:
            x = encoder(x, padding_mask=source_mask)
        d_model = x.shape[-1]
        # (batch, 1 + steps): the start token, then room for the votes.
        prompt = ops.concatenate(
            [ops.full((batch, 1), start_id, "int32"), ops.zeros((batch, steps), "int32")],
            axis=1,
        )
        prompt_mask = ops.concatenate(
            [ops.ones((batch, 1), "bool"), ops.zeros((batch, steps), "bool")], axis=1
        )
        # (batch, layers, 2, len, heads, head_dim)
        shape = (batch, num_layers, 2, steps + 1, num_heads, d_model // num_heads)
        self_cache = ops.zeros(shape, x.dtype)
        cross_cache = ops.zeros(
            (batch, num_layers, 2, ops.shape(source_ids)[1], num_heads, d_model // num_heads),
            x.dtype,
        )
        _, _, self_cache, cross_cache = decode(
            prompt, 0, x, source_mask, self_cache, cross_cache, 0
        )

        def next(prompt, cache, index):
            self_cache, cross_cache = cache
            start = index - 1
            token = ops.slice(prompt, [0, start], [batch, 1])
            logits, hidden, self_cache, _ = decode(
                token, start, x, source_mask, self_cache, cross_cache, None
            )
            return (
                ops.squeeze(logits, 1),
                ops.squeeze(hidden, 1),
                (self_cache, cross_cache),
            )

        tokens = sampler(
            next=next,
            prompt=prompt,
            cache=(self_cache, cross_cache),
            index=1,
            mask=prompt_mask,
            model=model,
        )
        return tokens[:, 1:]

    return tf.function(generate, jit_compile=jit_compile)
