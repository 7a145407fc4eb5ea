"""The arguments every attention block shares, stored and serialized once."""

import keras

from keras_stageshow.layers.adjust import Adjust
from keras_stageshow.layers.preprocess import Preprocess
from keras_stageshow.layers.rehearsal import Rehearsal
from keras_stageshow.layers.utils import check_heads
from keras_stageshow.layers.utils import check_positive_int
from keras_stageshow.layers.utils import check_rank
from keras_stageshow.layers.utils import check_rate


class StageBlock(keras.layers.Layer):
    """Base of the attention blocks: stores the shared arguments.

    Not a public layer; `PracticeRound`, `AskQuestions`, `WatchShow` and
    `AssessmentRound` derive from it.
    """

    def __init__(
        self,
        num_heads,
        dropout_rate=0.1,
        attention_dropout_rate=0.0,
        norm_first=False,
        layer_norm_epsilon=1e-5,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = check_positive_int(num_heads, "num_heads")
        self.dropout_rate = check_rate(dropout_rate, "dropout_rate")
        self.attention_dropout_rate = check_rate(
            attention_dropout_rate, "attention_dropout_rate"
        )
        self.norm_first = bool(norm_first)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.supports_masking = True

    def _check_input_shape(self, shape, name):
        check_rank(shape, 3, name, "of shape (batch, seq_len, d_model)")
        return check_heads(shape[-1], self.num_heads, f"{name}'s last dimension")

    def _make_rehearsal(self, d_model, name):
        return Rehearsal(
            num_heads=self.num_heads,
            key_dim=check_heads(d_model, self.num_heads),
            dropout=self.attention_dropout_rate,
            kernel_initializer=_clone(self.kernel_initializer),
            bias_initializer=_clone(self.bias_initializer),
            dtype=self.dtype_policy,
            name=name,
        )

    def _make_adjust(self, name):
        return Adjust(
            self.dropout_rate,
            norm_first=self.norm_first,
            layer_norm_epsilon=self.layer_norm_epsilon,
            dtype=self.dtype_policy,
            name=name,
        )

    def _feedforward_kwargs(self):
        return dict(
            dropout_rate=self.dropout_rate,
            norm_first=self.norm_first,
            layer_norm_epsilon=self.layer_norm_epsilon,
            kernel_initializer=_clone(self.kernel_initializer),
            bias_initializer=_clone(self.bias_initializer),
            dtype=self.dtype_policy,
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "dropout_rate": self.dropout_rate,
                "attention_dropout_rate": self.attention_dropout_rate,
                "norm_first": self.norm_first,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "bias_initializer": keras.initializers.serialize(
                    self.bias_initializer
                ),
            }
        )
        return config


def _clone(initializer):
    # Sublayers never share an initializer object (as in Keras MHA): a seeded
    # initializer shared by two kernels would give both the same values.
    return initializer.__class__.from_config(initializer.get_config())



class StageRound(StageBlock):
    """Base of the two rounds (`PracticeRound`, `AssessmentRound`): a block
    that also has a feed-forward sub-layer of width `d_ff`."""

    def __init__(self, num_heads, d_ff, activation="relu", **kwargs):
        super().__init__(num_heads, **kwargs)
        self.d_ff = check_positive_int(d_ff, "d_ff")
        self.activation = keras.activations.get(activation)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "d_ff": self.d_ff,
                "activation": keras.activations.serialize(self.activation),
            }
        )
        return config

class StageStack(keras.layers.Layer):
    """Base of the two stacks (`StageShow`, `OscarAssessment`).

    Holds the shared arguments, the `Preprocess` of the stack's tokens, the
    rounds' common keyword arguments and, for pre-norm stacks, the final
    LayerNorm. Not a public layer.
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
        self.vocabulary_size = check_positive_int(
            vocabulary_size, "vocabulary_size"
        )
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
                epsilon=layer_norm_epsilon,
                dtype=self.dtype_policy,
                name="final_norm",
            )

    def _round_kwargs(self):
        return dict(
            num_heads=self.num_heads,
            d_ff=self.d_ff,
            dropout_rate=self.dropout_rate,
            attention_dropout_rate=self.attention_dropout_rate,
            activation=self.activation,
            norm_first=self.norm_first,
            layer_norm_epsilon=self.layer_norm_epsilon,
            dtype=self.dtype_policy,
        )

    def _build_preprocess_and_norm(self, token_ids_shape):
        check_rank(token_ids_shape, 2, "token_ids", "of shape (batch, seq_len)")
        self.preprocess.build(token_ids_shape)
        hidden_shape = (*token_ids_shape, self.d_model)
        if self.final_norm is not None:
            self.final_norm.build(hidden_shape)
        return hidden_shape

    def _finish(self, x):
        return x if self.final_norm is None else self.final_norm(x)

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
