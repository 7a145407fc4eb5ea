"""Batch shapes and padding of Multi30k train, with and without bounded
shapes (issue 14): what `make_translation_dataset` reports (`return_stats`)
for `stageshow train`'s tokenization (one shared 6,000-piece vocabulary,
trained on the train split) and 2,048-token batches, both directions, for
length batches (the default) and each `--max-shapes`. No model, no
training: a minute of tokenizing. Prints one JSON line.

    python benchmarks/batch_shapes.py --data-dir ../shared/data/multi30k \\
        [--max-shapes 16,8,4] [--tokens-per-batch 2048]

`--smoke` (CI): 40 pairs, a 100-piece vocabulary, 256-token batches,
at most 4 and 2 shapes.
"""

import argparse

from common import MULTI30K_DIR
from common import SMOKE_VOCAB
from common import cpu_info
from common import parse_args
from common import print_result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=MULTI30K_DIR)
    parser.add_argument("--max-shapes", default="16,8,4")
    parser.add_argument("--tokens-per-batch", type=int, default=2048)
    parser.add_argument("--vocabulary-size", type=int, default=6000)
    args = parse_args(
        parser, argv, max_shapes="4,2", tokens_per_batch=256,
        vocabulary_size=SMOKE_VOCAB,
    )
    try:
        bounds = [int(v) for v in args.max_shapes.split(",")]
    except ValueError:
        parser.error(f"--max-shapes: comma-separated ints, like 16,8,4; got {args.max_shapes!r}")

    from keras_stageshow.datasets import load_multi30k
    from keras_stageshow.datasets import make_translation_dataset
    from keras_stageshow.tokenizers import SubwordTokenizer

    de, en = load_multi30k("train", data_dir=args.data_dir)
    tokenizer = SubwordTokenizer.train([de, en], vocabulary_size=args.vocabulary_size)
    texts = {"de": de, "en": en}
    results = {}
    for source, target in (("de", "en"), ("en", "de")):
        rows = {}
        for max_shapes in [None, *bounds]:
            _, stats = make_translation_dataset(
                texts[source], texts[target], tokenizer, tokenizer, max_length=128,
                tokens_per_batch=args.tokens_per_batch, return_stats=True,
                bounded_shapes=max_shapes is not None, max_shapes=max_shapes or 16,
            )
            name = "length_batches" if max_shapes is None else f"bounded_{max_shapes}"
            rows[name] = {
                key: stats[key]
                for key in ("shapes", "batches", "source_padding", "target_padding")
            }
        results[f"{source}-{target}"] = rows
    print_result({
        "benchmark": "batch_shapes",
        "pairs": len(de),
        "tokens_per_batch": args.tokens_per_batch,
        "vocabulary_size": args.vocabulary_size,
        "results": results,
        "cpu": cpu_info(),
    }, args)


if __name__ == "__main__":
    main()
