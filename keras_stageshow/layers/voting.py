"""`Voting`: the pre-softmax projection onto the target vocabulary."""

import keras
from keras import ops

from keras_stageshow.layers import fused_projection
from keras_stageshow.layers.utils import check_last_dim
from keras_stageshow.layers.utils import check_positive_int
from keras_stageshow.layers.utils import check_rank


@keras.saving.register_keras_serializable(package="keras_stageshow")
class Voting(keras.layers.Layer):
    """Voting: the pre-softmax linear projection onto the target vocabulary.

    The committee votes: `dec_output` is projected to one logit per target
    token (paper section 3.4). Logits, not probabilities: the softmax is
    folded into the loss in training and into the sampler in generation.
    Logits are always float32, also under mixed precision, so the loss and
    the sampler's softmax never run in float16.

    With `token_embedding` the projection is the transpose of that embedding
    matrix (the paper shares it with the target embedding); otherwise the
    layer owns a `Dense` kernel.

    Args:
        vocabulary_size: int, target vocabulary size.
        token_embedding: optional `keras.layers.Embedding` whose matrix
            serves as the projection (not serialized; the owner re-links it).
        kernel_initializer: initializer of the untied kernel.
        **kwargs: base layer keyword arguments.

    Call arguments:
        dec_output: `(batch, target_len, d_model)`.
        kernel: optional, `tied_kernel()` made once: the awards ceremony
            passes it to every decoding step, which then neither transposes
            the embeddings nor multiplies by them transposed (measured: a
            step 10% faster without XLA at batch 32, 2x faster with XLA at
            batch 1).

    Example:
    >>> voting = Voting(vocabulary_size=100)
    >>> voting(np.ones((1, 3, 16), "float32")).shape
    (1, 3, 100)
    """

    def __init__(
        self,
        vocabulary_size,
        token_embedding=None,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.vocabulary_size = check_positive_int(
            vocabulary_size, "vocabulary_size"
        )
        if token_embedding is not None and (
            token_embedding.input_dim != vocabulary_size
        ):
            raise ValueError(
                "`token_embedding` must have `vocabulary_size` rows: expected "
                f"{vocabulary_size}, got {token_embedding.input_dim}."
            )
        self.token_embedding = token_embedding
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.supports_masking = True

    def build(self, dec_output_shape):
        check_rank(
            dec_output_shape, 3, "dec_output", "of shape (batch, target_len, d_model)"
        )
        self.d_model = dec_output_shape[-1]
        self.dense = None
        if self.token_embedding is None:
            self.dense = keras.layers.Dense(
                self.vocabulary_size,
                kernel_initializer=self.kernel_initializer,
                dtype=self.dtype_policy,
                name="dense",
            )
            self.dense.build(dec_output_shape)
        else:
            self.token_embedding.build((None, None))
        self.built = True

    def call(self, dec_output, kernel=None):
        check_last_dim(dec_output, self.d_model, "dec_output")
        if self.dense is not None:
            logits = fused_projection.on_rows(self.dense, dec_output)
        else:
            # (d_model, vocab)
            kernel = self.tied_kernel() if kernel is None else kernel
            kernel = ops.cast(kernel, dec_output.dtype)
            # (batch, target_len, vocab)
            logits = fused_projection.on_rows(
                lambda rows: ops.matmul(rows, kernel), dec_output
            )
        return ops.cast(logits, "float32")

    def tied_kernel(self):
        """The tied embeddings as the kernel, `(d_model, vocab)` in the
        compute dtype; None when the layer owns a `Dense` kernel."""
        if self.dense is not None:
            return None
        embeddings = ops.cast(self.token_embedding.embeddings, self.compute_dtype)
        return ops.transpose(embeddings)

    def compute_output_shape(self, dec_output_shape):
        return (*dec_output_shape[:-1], self.vocabulary_size)

    def compute_output_spec(self, dec_output):
        return keras.KerasTensor(
            self.compute_output_shape(dec_output.shape), dtype="float32"
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
            }
        )
        return config
