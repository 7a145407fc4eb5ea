"""How keras_stageshow's training cost grows, and whether memory stays flat.

1. Length: step time of `model.fit` (fp32, d_model 256, 8 heads, d_ff 1024,
   3 + 3 layers, vocabulary 8000) at batch 16 for source = target length
   32, 64, 128, 256 and 512 (random ids, no padding).
2. Batch: step time at length 32 for batch 16, 64 and 256.
3. Memory: the process's resident memory after each of --epochs epochs of
   real, length-bucketed Multi30k batches (every batch a different shape,
   the case where retracing or caches would leak), and the peak.

Each point reports the mean step time over --steps steps (after a first), target tokens
per second and the counted GFLOP/s. Prints one JSON line.

    python benchmarks/scaling.py --data-dir ../shared/data/multi30k [--epochs 5]

`--smoke` (CI): a tiny model (`common.SMOKE_SIZE`, vocabulary 100), one point
of each sweep (length 8, batch 4), 2 steps with no warm-up `fit`; 2 epochs of
40 Multi30k pairs.
"""

import argparse
import gc

from common import MULTI30K_DIR  # also turns on oneDNN before TensorFlow loads
from common import SMOKE_BATCH
from common import SMOKE_LENGTH
from common import SMOKE_SENTENCES
from common import current_rss_mb
from common import fit_step_seconds
from common import model_size
from common import onednn_enabled
from common import parse_args
from common import peak_rss_mb
from common import print_result
from common import random_batch
from common import training_flops_per_target_token

LENGTHS = (32, 64, 128, 256, 512)
BATCHES = (16, 64, 256)
SMOKE_LENGTHS, SMOKE_BATCHES = (SMOKE_LENGTH,), (SMOKE_BATCH,)


def step_seconds(batch, length, steps, args, lengths):
    import keras

    import keras_stageshow as ks

    size, vocab = model_size(args)
    keras.utils.set_random_seed(0)
    model = ks.Transformer(vocab, vocab, max_length=max(lengths) + 1, **size)
    model.compile()
    data = random_batch(batch, length, length, vocab=vocab)
    if not args.smoke:
        model.fit(data, steps_per_epoch=2, epochs=1, verbose=0)  # trace
    seconds = fit_step_seconds(model, data, steps + 1)
    del model, data
    keras.backend.clear_session()
    gc.collect()
    flops = training_flops_per_target_token(
        vocab=vocab, source_len=length, target_len=length, **size
    )
    tokens = batch * length
    return {
        "step_seconds": round(seconds, 3),
        "target_tokens_per_second": round(tokens / seconds),
        "counted_gflops": round(tokens * flops / seconds / 1e9, 1),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir",
        default=MULTI30K_DIR,
    )
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--sentences", type=int, default=4000)
    args = parse_args(parser, argv, steps=1, epochs=2, sentences=SMOKE_SENTENCES)

    import keras

    import keras_stageshow as ks
    from keras_stageshow.datasets import load_multi30k
    from keras_stageshow.datasets import make_translation_dataset
    from keras_stageshow.tokenizers import SubwordTokenizer

    size, vocab = model_size(args)
    lengths, batches = (
        (SMOKE_LENGTHS, SMOKE_BATCHES) if args.smoke else (LENGTHS, BATCHES)
    )
    # Each sweep holds the other's first value: batch 16, length 32.
    length_batch, batch_length = batches[0], lengths[0]
    by_length = {
        str(length): step_seconds(length_batch, length, args.steps, args, lengths)
        for length in lengths
    }
    by_batch = {
        str(batch): step_seconds(batch, batch_length, args.steps, args, lengths)
        for batch in batches
    }

    german, english = load_multi30k("train", data_dir=args.data_dir)
    tokenizer = SubwordTokenizer.train([german, english], vocabulary_size=vocab)
    train, stats = make_translation_dataset(
        german[: args.sentences], english[: args.sentences], tokenizer, tokenizer,
        max_length=128, tokens_per_batch=2048, seed=0, return_stats=True,
    )
    keras.utils.set_random_seed(0)
    model = ks.Transformer(vocab, vocab, max_length=128, **size)
    model.compile()
    rss = []
    model.fit(
        train,
        epochs=args.epochs,
        verbose=0,
        callbacks=[
            keras.callbacks.LambdaCallback(
                on_epoch_end=lambda epoch, logs: rss.append(round(current_rss_mb()))
            )
        ],
    )
    print_result({
        "benchmark": "scaling",
        "config": {**size, "vocab": vocab},
        "onednn": onednn_enabled(),
        "by_length_at_batch_16": by_length,
        "by_batch_at_length_32": by_batch,
        "memory": {
            "data": f"multi30k train[:{args.sentences}], {stats['batches']} "
                    "length-bucketed batches of ~2048 tokens",
            "rss_mb_after_each_epoch": rss,
            "growth_after_first_epoch_mb": rss[-1] - rss[0],
            "peak_rss_mb": round(peak_rss_mb()),
        },
    }, args)


if __name__ == "__main__":
    main()
