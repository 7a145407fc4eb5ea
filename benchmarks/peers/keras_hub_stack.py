"""Peer 1: the keras-hub stack, built the way keras-hub's translation example
builds it: `TokenAndPositionEmbedding` + `TransformerEncoder` x N +
`TransformerDecoder` x N + `Dense`, as a functional Keras model."""

import keras
import keras_hub


def keras_hub_translator(
    vocabulary_size, num_layers=3, d_model=256, num_heads=8, d_ff=1024,
    max_length=128, dropout_rate=0.1,
):
    source = keras.Input((None,), dtype="int32", name="source_ids")
    target = keras.Input((None,), dtype="int32", name="target_ids")
    x = keras_hub.layers.TokenAndPositionEmbedding(
        vocabulary_size, max_length, d_model, mask_zero=True
    )(source)
    for _ in range(num_layers):
        x = keras_hub.layers.TransformerEncoder(
            d_ff, num_heads, dropout=dropout_rate
        )(x)
    y = keras_hub.layers.TokenAndPositionEmbedding(
        vocabulary_size, max_length, d_model, mask_zero=True
    )(target)
    for _ in range(num_layers):
        y = keras_hub.layers.TransformerDecoder(
            d_ff, num_heads, dropout=dropout_rate
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
