"""`Rehearsal`'s projections as 2-D matmuls on the `EinsumDense` kernels.

Keras's `EinsumDense` is a broadcasting BatchMatMul on TensorFlow whose
kernel gradient is a per-sequence product summed over the batch, the largest
cost in the profile of a training step (benchmarks/README.md). Here a
kernel `(d_model, heads, dim)` is flattened to `(d_model, heads * dim)`, and
the projections that read the same input are concatenated into ONE matmul.
The variables stay `EinsumDense`'s, so weights load either way. Quantized
projections (`model.quantize`) go through their own call, which applies
their scales.
"""

from keras import ops


def project(x, projections, num_heads, use_bias):
    """`x` through one or more `EinsumDense` projections in one matmul.

    # x: (batch, len, d_model) -> [(batch, len, num_heads, dim)] per projection
    """
    if any(p.dtype_policy.quantization_mode for p in projections):
        return [p(x) for p in projections]
    d_model = x.shape[-1]
    kernels = [ops.reshape(p.kernel, (d_model, -1)) for p in projections]
    widths = [k.shape[-1] for k in kernels]
    kernel = kernels[0] if len(kernels) == 1 else ops.concatenate(kernels, 1)
    # (batch, len, sum(widths)); a 2-D MatMul on TensorFlow
    y = ops.matmul(x, ops.cast(kernel, x.dtype))
    if use_bias:
        biases = [ops.reshape(p.bias, (-1,)) for p in projections]
        bias = biases[0] if len(biases) == 1 else ops.concatenate(biases, 0)
        y = y + ops.cast(bias, y.dtype)
    parts = [y] if len(widths) == 1 else ops.split(
        y, [sum(widths[: i + 1]) for i in range(len(widths) - 1)], axis=-1
    )
    batch, length = ops.shape(x)[0], ops.shape(x)[1]
    return [ops.reshape(part, (batch, length, num_heads, -1)) for part in parts]


def project_output(x, dense, use_bias):
    """The output projection `dense` as one 2-D matmul.

    # x: (batch, len, num_heads, value_dim) -> (batch, len, output_width)
    """
    if dense.dtype_policy.quantization_mode:
        return dense(x)
    batch, length = ops.shape(x)[0], ops.shape(x)[1]
    # (num_heads, value_dim, out) -> (num_heads * value_dim, out)
    kernel = ops.reshape(dense.kernel, (-1, dense.kernel.shape[-1]))
    # (batch, len, num_heads * value_dim)
    x = ops.reshape(x, (batch, length, kernel.shape[0]))
    y = ops.matmul(x, ops.cast(kernel, x.dtype))
    if use_bias:
        y = y + ops.cast(dense.bias, y.dtype)
    return y
