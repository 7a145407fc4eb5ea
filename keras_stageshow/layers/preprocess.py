"""`Preprocess`: token embedding, scaling and the paper's sinusoidal positions."""

import math

import keras
from keras import ops

from keras_stageshow.layers.dropout import Dropout
from keras_stageshow.layers.masks import padding_mask_from_ids
from keras_stageshow.layers.utils import check_positive_int
from keras_stageshow.layers.utils import check_rate
from keras_stageshow.layers.utils import check_token_ids


@keras.saving.register_keras_serializable(package="keras_stageshow")
class Preprocess(keras.layers.Layer):
    """Preprocess: token embedding, scaled, plus sinusoidal positional encoding.

    The script (token ids) becomes the material the troupe works with:
    `Embedding -> x sqrt(d_model) -> + positional encoding -> Dropout`, as in
    section 3.4 and 3.5 of the paper. Positional encodings are the paper's
    sinusoids, `PE(pos, 2i) = sin(pos / 10000^(2i/d_model))` and
    `PE(pos, 2i+1) = cos(...)`, computed on the fly (no weights) as
    `keras_hub.layers.SinePositionEncoding` computes them, in fewer ops.

    Token id 0 is padding: the layer returns a Keras mask (`token_ids != 0`)
    that the following stage-show layers use as the padding mask.

    Args:
        vocabulary_size: int. Number of token ids.
        d_model: int. Width of the embeddings.
        max_length: int. Longest sequence the layer accepts (positions
            `0 .. max_length - 1`).
        dropout_rate: float. Dropout on embedding + positional encoding.
        embeddings_initializer: initializer for the embedding matrix. The
            default, normal with stddev `d_model ** -0.5`, makes the scaled
            embedding unit-variance, which suits its second use as the
            pre-softmax projection (see `Voting`).
        token_embedding: optional existing `keras.layers.Embedding` to use
            instead of creating one, so that several layers share one
            matrix. It is not serialized; the owner that shares it (the
            `Transformer`) re-links it when rebuilt from its config.
        **kwargs: base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        token_ids: int tensor `(batch, seq_len)`.
        start_index: int, position of the first token (for cached decoding,
            where one token at position `start_index` is fed at a time).
        training: bool, whether dropout is active.

    Example:
    >>> layer = Preprocess(vocabulary_size=100, d_model=16, max_length=32)
    >>> layer(np.array([[5, 7, 9, 0]])).shape
    (1, 4, 16)
    """

    def __init__(
        self,
        vocabulary_size,
        d_model,
        max_length=512,
        dropout_rate=0.1,
        embeddings_initializer=None,
        token_embedding=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.vocabulary_size = check_positive_int(
            vocabulary_size, "vocabulary_size"
        )
        self.d_model = check_positive_int(d_model, "d_model")
        self.max_length = check_positive_int(max_length, "max_length")
        self.dropout_rate = check_rate(dropout_rate, "dropout_rate")
        if embeddings_initializer is None:
            embeddings_initializer = keras.initializers.RandomNormal(
                stddev=d_model**-0.5
            )
        self.embeddings_initializer = keras.initializers.get(
            embeddings_initializer
        )
        self.supports_masking = True
        # The name input errors use; an owner that knows what the ids are
        # (the Transformer: "source_ids", "target_ids") sets it. Not config.
        self.token_ids_name = "token_ids"
        if token_embedding is None:
            token_embedding = keras.layers.Embedding(
                vocabulary_size,
                d_model,
                embeddings_initializer=self.embeddings_initializer,
                dtype=self.dtype_policy,
                name="token_embedding",
            )
        elif (
            token_embedding.input_dim != vocabulary_size
            or token_embedding.output_dim != d_model
        ):
            raise ValueError(
                "`token_embedding` must map `vocabulary_size` ids to `d_model` "
                f"features: expected ({vocabulary_size}, {d_model}), got "
                f"({token_embedding.input_dim}, {token_embedding.output_dim})."
            )
        self.token_embedding = token_embedding
        self.dropout = Dropout(
            self.dropout_rate, dtype=self.dtype_policy, name="dropout"
        )
        self._scale = math.sqrt(d_model)

    def build(self, token_ids_shape):
        self.token_embedding.build(token_ids_shape)
        self.dropout.build((*token_ids_shape, self.d_model))
        self.built = True

    def call(self, token_ids, start_index=0, training=None):
        token_ids = check_token_ids(
            token_ids, self.token_ids_name, self.vocabulary_size, self.max_length
        )
        # (batch, seq_len, d_model)
        x = self.token_embedding(token_ids)
        x = x * ops.cast(self._scale, x.dtype)
        x = x + ops.cast(
            self.positional_encoding(ops.shape(token_ids)[1], start_index),
            x.dtype,
        )
        return self.dropout(x, training=training)

    def positional_encoding(self, length, start_index=0):
        """The paper's sinusoids for positions `start_index .. + length`,
        in float32 under any policy (in float16 or bfloat16 the angles of
        late positions would be wrong).

        The values of `keras_hub.layers.SinePositionEncoding`, to the bit
        (its timescales, then one product per angle), in a third of its ops
        (no einsums): a decoding step without XLA computes its position's
        row op by op. A table of every position, read by index, would save
        four more ops a step but adds `max_length * d_model` floats to every
        traced function (6 MB to a SavedModel of the default model).

        # (1, length, d_model), float32
        """
        features = ops.arange(self.d_model)
        # The keras-hub timescales: 10000^(-2i / d_model), i = feature // 2.
        # Constants, which TensorFlow's compiler folds. (d_model,)
        exponents = ops.cast(2 * (features // 2), "float32")
        timescales = ops.power(
            ops.cast(1 / 10000, "float32"),
            exponents / ops.cast(self.d_model, "float32"),
        )
        positions = ops.cast(ops.arange(length) + start_index, "float32")
        # (length, d_model)
        angles = ops.expand_dims(positions, -1) * timescales
        encoding = ops.where(features % 2 == 0, ops.sin(angles), ops.cos(angles))
        return ops.expand_dims(encoding, 0)

    def compute_mask(self, token_ids, mask=None):
        return padding_mask_from_ids(token_ids)

    def compute_output_shape(self, token_ids_shape):
        return (*token_ids_shape, self.d_model)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "d_model": self.d_model,
                "max_length": self.max_length,
                "dropout_rate": self.dropout_rate,
                "embeddings_initializer": keras.initializers.serialize(
                    self.embeddings_initializer
                ),
            }
        )
        return config
