"""What the benchmarks share: the issue's configuration, the FLOP count, the
machine's matmul peak, alternating timing and memory readings.

Import this module before TensorFlow: it turns on TensorFlow's oneDNN kernels
(`TF_ENABLE_ONEDNN_OPTS=1`) unless the environment says otherwise. TensorFlow
enables them by default only on CPUs with AVX-512 VNNI/BF16 or AMX; on this
machine's AVX2 EPYC they double the speed of every matmul (README, "Where it
goes"). Every model in a benchmark runs in the same process, so the peers get
the same kernels.
"""

import os
import resource
import statistics
import sys
import time

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HERE = os.path.dirname(os.path.abspath(__file__))
# The shared Multi30k folder, next to this checkout (every --data-dir's default).
MULTI30K_DIR = os.path.join(HERE, "..", "..", "shared", "data", "multi30k")
sys.path.insert(0, os.path.dirname(HERE))

# The configuration, and the paper's base model as a second point.
SIZES = {
    "small": dict(num_layers=3, d_model=256, num_heads=8, d_ff=1024),
    "base": dict(num_layers=6, d_model=512, num_heads=8, d_ff=2048),
}
VOCAB, BATCH, LENGTH = 8000, 64, 32


def training_flops_per_target_token(
    num_layers, d_model, d_ff, vocab, source_len, target_len, **unused
):
    """Matrix-multiply FLOPs of one training step per target token (the
    forward pass x 3: the backward pass costs two more), for batches with as
    many source as target tokens. Elementwise work (softmax, LayerNorm,
    dropout, Adam) is not counted: it is what the fraction of peak leaves."""
    d = d_model
    encoder = num_layers * (
        8 * d * d  # Q, K, V and output projections
        + 4 * source_len * d  # scores and weighted values
        + 4 * d * d_ff  # feed-forward
    )
    decoder = num_layers * (
        8 * d * d + 4 * target_len * d  # masked self-attention
        + 8 * d * d + 4 * source_len * d  # cross-attention
        + 4 * d * d_ff
    ) + 2 * d * vocab  # Voting
    return 3 * (encoder + decoder)


def best_seconds(function, repeats):
    """The fastest of `repeats` timed calls of `function`, after one
    untimed call."""
    function()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def matmul_peak_gflops(n=4096, repeats=5, dtype="float32"):
    """Best-of-`repeats` GFLOP/s of one n x n TensorFlow matmul, and of
    NumPy's (OpenBLAS) for reference."""
    import tensorflow as tf

    a = tf.cast(tf.random.normal((n, n)), dtype)
    b = tf.cast(tf.random.normal((n, n)), dtype)
    flops = 2 * n**3
    seconds = best_seconds(lambda: tf.matmul(a, b).numpy(), repeats)
    result = {"tensorflow": round(flops / seconds / 1e9, 1)}
    if dtype == "float32":
        a, b = a.numpy(), b.numpy()
        result["numpy"] = round(flops / best_seconds(lambda: a @ b, repeats) / 1e9, 1)
    return result


def alternate(functions, rounds):
    """Runs each of `functions` (name -> callable returning seconds, or
    None to time the call) once per round, in a rotating order, for
    `rounds` rounds. Returns name -> list of seconds. A noisy neighbour then
    slows every contender alike, and the medians hold."""
    names = list(functions)
    seconds = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            start = time.perf_counter()
            measured = functions[name]()
            seconds[name].append(
                measured if measured is not None else time.perf_counter() - start
            )
    return seconds


def fit_step_seconds(model, data, steps):
    """Runs `model.fit` for `steps` steps and returns the mean time of its
    steps after the first, read from a batch-end callback: the steady-state
    step time inside `fit`, without the per-call start-up and tear-down of
    `fit` itself (which on this machine added a near-constant ~2 s to
    every call and swamped short turns)."""
    import keras

    ends = []
    model.fit(
        data,
        steps_per_epoch=steps,
        epochs=1,
        verbose=0,
        callbacks=[
            keras.callbacks.LambdaCallback(
                on_train_batch_end=lambda batch, logs: ends.append(time.perf_counter())
            )
        ],
    )
    return (ends[-1] - ends[0]) / (len(ends) - 1)


def median(values):
    return statistics.median(values)


def peak_rss_mb():
    """This process's peak resident memory so far, in MiB (Linux: KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb():
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def cpu_info():
    """The CPU model and the vector extensions that decide TensorFlow's
    kernels (from `lscpu`), for every benchmark line."""
    import subprocess

    fields = {}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
    except OSError:
        pass
    flags = set(fields.get("Flags", "").split())
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16")
    return {
        "model": fields.get("Model name", "unknown"),
        "cores": os.cpu_count(),
        "extensions": [flag for flag in wanted if flag in flags],
    }


def onednn_enabled():
    return os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "1"


def random_batch(batch, source_len, target_len, vocab=VOCAB, seed=0):
    """One batch of random ids (no padding), as a repeating tf.data input."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    source = rng.integers(4, vocab, (batch, source_len)).astype("int32")
    target = rng.integers(4, vocab, (batch, target_len + 1)).astype("int32")
    return (
        tf.data.Dataset.from_tensors(((source, target[:, :-1]), target[:, 1:]))
        .repeat()
        .prefetch(2)
    )


def score_translations(translator, sources, references, **options):
    """Translates `sources` with `options` (`Translator.translate`'s) and
    scores them: sacreBLEU (cased, 13a), lowercased 13a BLEU and the
    decoding seconds, with the hypotheses under "hypotheses"."""
    from keras_stageshow.evaluation import bleu_scores

    start = time.time()
    hypotheses = translator.translate(sources, batch_size=64, **options)
    seconds = time.time() - start
    scores = bleu_scores(hypotheses, references)
    return {
        "sacrebleu": scores["sacrebleu"],
        "bleu_lc_tok": scores["bleu_lowercased_tokenized"],
        "decode_seconds": round(seconds, 1),
        "sacrebleu_signature": scores["sacrebleu_signature"],
        "lowercased_signature": scores["lowercased_signature"],
        "hypotheses": hypotheses,
    }


def averaging_summary(run):
    """The run's `averaging` record (run.json) with its losses rounded, or
    None for a run that did not average."""
    averaging = run.get("averaging")
    if not averaging:
        return None
    return {
        k: round(v, 4) if isinstance(v, float) else v
        for k, v in averaging.items()
        if k not in ("average_last", "best_single_epoch")
    }


def kept_model(run):
    """Which model a finished run kept (run.json): "best_single",
    "average" or "average_to_best"."""
    return (run.get("averaging") or {}).get("chosen", "best_single")
