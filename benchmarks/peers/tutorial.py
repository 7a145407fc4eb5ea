"""Peer 2: the structure of the TensorFlow Text Transformer tutorial
("Neural machine translation with a Transformer and Keras"), written here
from its description: a positional embedding, attention blocks on Keras
`MultiHeadAttention` followed by Add + LayerNorm, a feed-forward block,
encoder and decoder stacks and a final Dense. Its generation loop re-runs
the decoder over the whole prefix at every step (no cache)."""

import keras
import numpy as np
from keras import ops


def sinusoids(length, depth):
    positions = np.arange(length)[:, None]
    rates = 1 / (10000 ** (np.arange(depth // 2)[None, :] / (depth / 2)))
    angles = positions * rates
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=-1).astype("float32")


class PositionalEmbedding(keras.layers.Layer):
    def __init__(self, vocabulary_size, d_model, max_length=2048, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        self.d_model = d_model
        self.embedding = keras.layers.Embedding(vocabulary_size, d_model, mask_zero=True)
        self.encoding = sinusoids(max_length, d_model)

    def compute_mask(self, x, mask=None):
        return self.embedding.compute_mask(x, mask)

    def call(self, x):
        length = ops.shape(x)[1]
        x = self.embedding(x)
        # In the compute dtype, so the peer also runs under mixed precision.
        x = x * ops.sqrt(ops.cast(self.d_model, x.dtype))
        return x + ops.cast(ops.convert_to_tensor(self.encoding)[None, :length, :], x.dtype)


class BaseAttention(keras.layers.Layer):
    def __init__(self, **kwargs):
        super().__init__()
        self.supports_masking = True
        self.mha = keras.layers.MultiHeadAttention(**kwargs)
        self.layernorm = keras.layers.LayerNormalization()
        self.add = keras.layers.Add()


class CrossAttention(BaseAttention):
    def call(self, x, context):
        attended = self.mha(query=x, key=context, value=context)
        return self.layernorm(self.add([x, attended]))


class GlobalSelfAttention(BaseAttention):
    def call(self, x):
        return self.layernorm(self.add([x, self.mha(query=x, value=x, key=x)]))


class CausalSelfAttention(BaseAttention):
    def call(self, x):
        attended = self.mha(query=x, value=x, key=x, use_causal_mask=True)
        return self.layernorm(self.add([x, attended]))


class FeedForward(keras.layers.Layer):
    def __init__(self, d_model, d_ff, dropout_rate=0.1):
        super().__init__()
        self.supports_masking = True
        self.seq = keras.Sequential([
            keras.layers.Dense(d_ff, activation="relu"),
            keras.layers.Dense(d_model),
            keras.layers.Dropout(dropout_rate),
        ])
        self.add = keras.layers.Add()
        self.layer_norm = keras.layers.LayerNormalization()

    def call(self, x):
        return self.layer_norm(self.add([x, self.seq(x)]))


class EncoderLayer(keras.layers.Layer):
    def __init__(self, d_model, num_heads, d_ff, dropout_rate=0.1):
        super().__init__()
        self.supports_masking = True
        self.self_attention = GlobalSelfAttention(
            num_heads=num_heads, key_dim=d_model // num_heads, dropout=dropout_rate
        )
        self.ffn = FeedForward(d_model, d_ff, dropout_rate)

    def call(self, x):
        return self.ffn(self.self_attention(x))


class Encoder(keras.layers.Layer):
    def __init__(self, num_layers, d_model, num_heads, d_ff, vocabulary_size, dropout_rate=0.1):
        super().__init__()
        self.embedding = PositionalEmbedding(vocabulary_size, d_model)
        self.layers_ = [
            EncoderLayer(d_model, num_heads, d_ff, dropout_rate) for _ in range(num_layers)
        ]
        self.dropout = keras.layers.Dropout(dropout_rate)

    def call(self, x):
        x = self.dropout(self.embedding(x))
        for layer in self.layers_:
            x = layer(x)
        return x


class DecoderLayer(keras.layers.Layer):
    def __init__(self, d_model, num_heads, d_ff, dropout_rate=0.1):
        super().__init__()
        self.supports_masking = True
        key_dim = d_model // num_heads
        self.causal_self_attention = CausalSelfAttention(
            num_heads=num_heads, key_dim=key_dim, dropout=dropout_rate
        )
        self.cross_attention = CrossAttention(
            num_heads=num_heads, key_dim=key_dim, dropout=dropout_rate
        )
        self.ffn = FeedForward(d_model, d_ff, dropout_rate)

    def call(self, x, context):
        x = self.causal_self_attention(x)
        x = self.cross_attention(x, context)
        return self.ffn(x)


class Decoder(keras.layers.Layer):
    def __init__(self, num_layers, d_model, num_heads, d_ff, vocabulary_size, dropout_rate=0.1):
        super().__init__()
        self.embedding = PositionalEmbedding(vocabulary_size, d_model)
        self.dropout = keras.layers.Dropout(dropout_rate)
        self.layers_ = [
            DecoderLayer(d_model, num_heads, d_ff, dropout_rate) for _ in range(num_layers)
        ]

    def call(self, x, context):
        x = self.dropout(self.embedding(x))
        for layer in self.layers_:
            x = layer(x, context)
        return x


class TutorialTransformer(keras.Model):
    def __init__(self, vocabulary_size, num_layers=3, d_model=256, num_heads=8,
                 d_ff=1024, dropout_rate=0.1):
        super().__init__()
        self.encoder = Encoder(num_layers, d_model, num_heads, d_ff, vocabulary_size, dropout_rate)
        self.decoder = Decoder(num_layers, d_model, num_heads, d_ff, vocabulary_size, dropout_rate)
        self.final_layer = keras.layers.Dense(vocabulary_size)

    def call(self, inputs):
        source, target = inputs
        context = self.encoder(source)
        return self.final_layer(self.decoder(target, context))

    def greedy_graph(self, steps, start_id=2):
        """The same loop in a `tf.function`, as the tutorial exports it: a
        TensorArray of tokens, the whole prefix re-decoded at each step."""
        import tensorflow as tf

        @tf.function
        def greedy(source):
            context = self.encoder(source, training=False)
            batch = tf.shape(source)[0]
            tokens = tf.TensorArray(tf.int32, size=0, dynamic_size=True)
            tokens = tokens.write(0, tf.fill([batch], start_id))
            for i in tf.range(steps):
                prefix = tf.transpose(tokens.stack())  # (batch, i + 1)
                logits = self.final_layer(self.decoder(prefix, context, training=False))
                tokens = tokens.write(
                    i + 1, tf.argmax(logits[:, -1, :], axis=-1, output_type=tf.int32)
                )
            return tf.transpose(tokens.stack())[:, 1:]

        return greedy

    def greedy(self, source, steps, start_id=2):
        """The tutorial's loop: the whole prefix through the decoder each step."""
        context = self.encoder(source, training=False)
        tokens = np.full((source.shape[0], 1), start_id, "int32")
        for _ in range(steps):
            logits = self.final_layer(self.decoder(tokens, context, training=False))
            nxt = ops.convert_to_numpy(ops.argmax(logits[:, -1, :], axis=-1)).astype("int32")
            tokens = np.concatenate([tokens, nxt[:, None]], axis=1)
        return tokens[:, 1:]
