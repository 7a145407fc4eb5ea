"""XLA training with bounded batch shapes: `train_translation_run` (what
`stageshow train` runs) with `jit_compile` off and on, on real Multi30k
pairs, epoch by epoch.

Contenders, one after another in one process, each a fresh run:
`no_xla` (jit off, each batch its own shape: the default), `xla`
(jit on, which turns bounded shapes on: at most 16 shapes), and
`graph_bounded` (jit off with bounded shapes, to separate the padding's cost
from XLA's gain). Reports, per contender, the distinct batch shapes, the
padding, the seconds of each epoch (the first holds XLA's compilations) and
the ratio of the whole run's time to the default's. Prints one JSON line.

    python benchmarks/xla_training.py --data-dir ../shared/data/multi30k \\
        [--pairs 6000] [--epochs 2] [--layers 2] [--d-model 128] [--heads 4]
        [--d-ff 512] [--contenders no_xla,xla,graph_bounded]

(`--pairs 0 --epochs 3 --layers 3 --d-model 256 --heads 8 --d-ff 512
--contenders no_xla,xla` is a full Multi30k run of `stageshow train`'s model.)

`--smoke` (CI): 40 pairs (and 40 of val), a tiny model (`common.SMOKE_SIZE`)
with a 100-piece vocabulary, 2 epochs of `no_xla` and `graph_bounded` (the
`xla` contender compiles each of its 16 shapes: minutes, even for this model).
"""

import argparse
import os
import tempfile
import time

from common import MULTI30K_DIR  # also turns on oneDNN before TensorFlow loads
from common import SMOKE_SIZE
from common import SMOKE_VOCAB
from common import cpu_info
from common import onednn_enabled
from common import parse_args
from common import print_result
from common import smoke_requested

CONTENDERS = {
    "no_xla": dict(jit_compile=False),
    "xla": dict(jit_compile=True),
    "graph_bounded": dict(jit_compile=False, bounded_shapes=True),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=not smoke_requested(argv))
    parser.add_argument("--pairs", type=int, default=6000, help="0: all 29,000")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--d-ff", type=int, help="default: 4 x d_model")
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    args = parse_args(
        parser, argv, data_dir=MULTI30K_DIR, pairs=0, layers=SMOKE_SIZE["num_layers"],
        d_model=SMOKE_SIZE["d_model"], heads=SMOKE_SIZE["num_heads"],
        d_ff=SMOKE_SIZE["d_ff"], contenders="no_xla,graph_bounded",
    )

    import keras

    from keras_stageshow.datasets import load_multi30k
    from keras_stageshow.training.run import train_translation_run

    de, en = load_multi30k("train", data_dir=args.data_dir)
    if args.pairs:
        de, en = de[: args.pairs], en[: args.pairs]
    val = load_multi30k("val", data_dir=args.data_dir)
    size = dict(
        num_layers=args.layers, d_model=args.d_model, num_heads=args.heads,
        d_ff=args.d_ff or 4 * args.d_model,
    )

    class EpochTimes(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.seconds, self.start = [], None

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(round(time.perf_counter() - self.start, 1))

    # A smoke run's few pairs hold too few pieces for the default vocabulary.
    tokenizer = {"vocabulary_size": SMOKE_VOCAB} if args.smoke else {}
    results = {}
    for name in args.contenders.split(","):
        timer = EpochTimes()
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            run = train_translation_run(
                os.path.join(out, "run"), (de, en), val, verbose=0,
                callbacks=[timer], epochs=args.epochs, **size, **tokenizer,
                **CONTENDERS[name],
            )
            total = time.perf_counter() - start
        results[name] = {
            "shapes": run["train_data"]["shapes"],
            "batches": run["train_data"]["batches"],
            "source_padding": run["train_data"]["source_padding"],
            "target_padding": run["train_data"]["target_padding"],
            "epoch_seconds": timer.seconds,
            "run_seconds": round(total, 1),
            "val_loss": round(run["best_val_loss"], 4),
        }
    base = results.get("no_xla")
    if base:
        for result in results.values():
            result["run_vs_default"] = round(result["run_seconds"] / base["run_seconds"], 3)
            result["later_epochs_vs_default"] = (
                round(sum(result["epoch_seconds"][1:]) / sum(base["epoch_seconds"][1:]), 3)
                if len(base["epoch_seconds"]) > 1 else None
            )
    print_result({
        "benchmark": "xla_training",
        "pairs": len(de), "epochs": args.epochs, **size,
        "results": results,
        "cpu": cpu_info(), "onednn": onednn_enabled(),
        "keras": keras.__version__,
    }, args)


if __name__ == "__main__":
    main()
