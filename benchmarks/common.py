"""What the benchmarks share: the issue's configuration, the FLOP count, the
machine's matmul peak, alternating timing and memory readings.

Import this module before TensorFlow: it turns on TensorFlow's oneDNN kernels
(`TF_ENABLE_ONEDNN_OPTS=1`) unless the environment says otherwise. TensorFlow
enables them by default only on CPUs with AVX-512 VNNI/BF16 or AMX; on this
machine's AVX2 EPYC they double the speed of every matmul (README, "Where it
goes"). Every model in a benchmark runs in the same process, so the peers get
the same kernels.
"""

import atexit
import gzip
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
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

# --smoke: a benchmark end to end at tiny sizes, in well under a minute (what
# tests/test_benchmarks.py runs in CI). The figures mean nothing.
# The vocabulary is that of random ids and, at most, of tokenizers (so few
# sentences may give fewer pieces).
SMOKE_SIZE = dict(num_layers=1, d_model=16, num_heads=2, d_ff=32)
SMOKE_VOCAB, SMOKE_BATCH, SMOKE_LENGTH = 100, 4, 8
# Pairs of each Multi30k split that a smoke run sees.
SMOKE_SENTENCES = 40
# `stageshow train`'s settings for a smoke run's model and tokenizer.
SMOKE_RUN_SETTINGS = dict(SMOKE_SIZE, vocabulary_size=SMOKE_VOCAB)
# The committed trained RUN_DIR (tests/fixtures/README.md), for smoke runs of
# the benchmarks that read a trained run.
FIXTURE_RUN = os.path.join(HERE, "..", "tests", "fixtures", "main_run")


# `model_size`'s name for the model `stageshow train` trains by default: its
# recipe's sizes and vocabulary (keras_stageshow/training/recipe.py).
RECIPE_SIZE = "recipe"


def model_size(args, size="small"):
    """`(size, vocab)`: SIZES[size] and VOCAB, the recipe's model and
    vocabulary for RECIPE_SIZE, or with --smoke the tiny SMOKE_SIZE and
    SMOKE_VOCAB."""
    if args.smoke:
        return dict(SMOKE_SIZE), SMOKE_VOCAB
    if size == RECIPE_SIZE:
        from keras_stageshow.training.recipe import MODEL_SETTINGS
        from keras_stageshow.training.recipe import TOKENIZER_SETTINGS

        # The settings every size names (the others are the recipe's own).
        return (
            {name: MODEL_SETTINGS[name] for name in SIZES["small"]},
            TOKENIZER_SETTINGS["vocabulary_size"],
        )
    return SIZES[size], VOCAB


def batch_shape(args):
    """`(batch, length)` of the random batches: BATCH and LENGTH, or with
    --smoke SMOKE_BATCH and SMOKE_LENGTH."""
    return (SMOKE_BATCH, SMOKE_LENGTH) if args.smoke else (BATCH, LENGTH)


def smoke_requested(argv=None):
    """Whether `argv` (default: the command line) asks for --smoke, before
    any `--` (what follows it is passed on)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--" in argv:
        argv = argv[: argv.index("--")]
    return "--smoke" in argv


def parse_args(parser, argv=None, smoke_data=True, **smoke_defaults):
    """Adds --smoke to `parser` and parses `argv` (default: the command
    line). With --smoke, the flags named in `smoke_defaults` default to
    those values instead (a flag given still wins), and, with `smoke_data`,
    a `--data-dir` is replaced by a copy of the first `SMOKE_SENTENCES`
    pairs of each of its Multi30k splits (`smoke_data_dir`)."""
    parser.add_argument(
        "--smoke", action="store_true",
        help="tiny sizes: run every code path in seconds (CI); the figures "
        "mean nothing",
    )
    if smoke_requested(argv):
        parser.set_defaults(**smoke_defaults)
    args = parser.parse_args(argv)
    if args.smoke and smoke_data and getattr(args, "data_dir", None):
        args.data_dir = smoke_data_dir(args.data_dir)
    return args


_smoke_data_dirs = {}


def smoke_data_dir(data_dir, sentences=SMOKE_SENTENCES):
    """A temporary Multi30k folder with the first `sentences` lines of each
    `<split>.<lang>.gz` of `data_dir` (made once a process, removed at
    exit), so that every reader, a `stageshow train` subprocess included,
    sees a few dozen pairs."""
    key = (os.path.abspath(data_dir), sentences)
    if key not in _smoke_data_dirs:
        folder = tempfile.mkdtemp(prefix="stageshow-smoke-multi30k-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        names = sorted(n for n in os.listdir(data_dir) if n.endswith(".gz"))
        if not names:
            raise FileNotFoundError(f"no Multi30k .gz files in {data_dir!r}")
        for name in names:
            with gzip.open(os.path.join(data_dir, name), "rt", encoding="utf-8") as f:
                lines = [line for _, line in zip(range(sentences), f)]
            with gzip.open(os.path.join(folder, name), "wt", encoding="utf-8") as f:
                f.writelines(lines)
        _smoke_data_dirs[key] = folder
    return _smoke_data_dirs[key]


def smoke_train_flags():
    """`SMOKE_RUN_SETTINGS` as `stageshow train` flags."""
    return [
        flag
        for name, value in SMOKE_RUN_SETTINGS.items()
        for flag in (f"--{name.replace('_', '-')}", str(value))
    ]


def smoke_out_dir(prefix):
    """A temporary folder for a smoke run's RUN_DIRs (removed at exit)."""
    folder = tempfile.mkdtemp(prefix=f"stageshow-smoke-{prefix}-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def print_result(result, args, **dumps_options):
    """Prints the benchmark's JSON line, with `"smoke": true` on a smoke
    run."""
    if args.smoke:
        result = {**result, "smoke": True}
    print(json.dumps(result, **dumps_options), flush=True)


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


def matmul_peak_gflops(n=4096, repeats=5, dtype="float32", smoke=False):
    """Best-of-`repeats` GFLOP/s of one n x n TensorFlow matmul, and of
    NumPy's (OpenBLAS) for reference. `smoke`: one 64 x 64 matmul."""
    import tensorflow as tf

    if smoke:
        n, repeats = 64, 1
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
        **bleu_fields(scores),
        "decode_seconds": round(seconds, 1),
        "sacrebleu_signature": scores["sacrebleu_signature"],
        "lowercased_signature": scores["lowercased_signature"],
        "hypotheses": hypotheses,
    }


def bleu_fields(scores):
    """The two BLEU figures the benchmarks' lines report, from
    `keras_stageshow.evaluation.bleu_scores`' dict: sacreBLEU (cased, 13a)
    and lowercased 13a BLEU."""
    return {
        "sacrebleu": scores["sacrebleu"],
        "bleu_lc_tok": scores["bleu_lowercased_tokenized"],
    }


def folder_bytes(path):
    """The bytes of every file under `path` (a SavedModel's size)."""
    return sum(
        os.path.getsize(os.path.join(folder, name))
        for folder, _, files in os.walk(path)
        for name in files
    )


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
