"""Generation: greedy decoding of 64 new tokens, keras_stageshow's cached
loop against keras-hub's cached decoding and the TensorFlow tutorial's
uncached loop, side by side in one process; plus beam search's cost.

fp32, d_model 256, 8 heads, d_ff 1024, 3 + 3 layers (or --size base),
vocabulary 8000, source length 32, batch 1 and batch 32, untrained weights
(speed does not depend on them). Every contender generates exactly 64 tokens
per row: the end token is set to an id that no contender votes for, and the
benchmark checks it. keras_stageshow runs as a user calls it (`generate`,
XLA on by default; its plain `tf.function` loop is shown too). keras-hub runs at its best of `jit_compile` on/off; the
tutorial loop at its best of eager and `tf.function`. The contenders take
turns in a rotating order; the median over rounds is reported. Prints one
JSON line.

    python benchmarks/generation.py [--size small|base] [--rounds 5]

`--smoke` (CI): a tiny model (`common.SMOKE_SIZE`, vocabulary 100), 4 new
tokens from 8 source tokens at batch 2, one round.
"""

import argparse
import time

from common import SIZES  # also turns on oneDNN before TensorFlow loads
from common import alternate
from common import median
from common import model_size
from common import onednn_enabled
from common import parse_args
from common import print_result

NEW_TOKENS, SOURCE_LEN = 64, 32
SMOKE_NEW_TOKENS, SMOKE_SOURCE_LEN = 4, 8


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    args = parse_args(parser, argv, rounds=1, batches=[2])
    new_tokens, source_len = (
        (SMOKE_NEW_TOKENS, SMOKE_SOURCE_LEN) if args.smoke else (NEW_TOKENS, SOURCE_LEN)
    )

    import keras
    import numpy as np

    import keras_stageshow as ks
    from peers.keras_hub_stack import cached_greedy_function
    from peers.keras_hub_stack import keras_hub_translator
    from peers.tutorial import TutorialTransformer

    size, vocab = model_size(args, args.size)
    keras.utils.set_random_seed(0)
    ours = ks.Transformer(vocab, vocab, max_length=128, **size)
    ours.build(((None, None), (None, None)))
    hub = keras_hub_translator(vocab, max_length=128, **size)
    tutorial = TutorialTransformer(vocab, **size)
    rng = np.random.default_rng(0)
    sources = {
        b: rng.integers(4, vocab, (b, source_len)).astype("int32") for b in args.batches
    }
    tutorial(
        (sources[args.batches[0]], sources[args.batches[0]]), training=False
    )  # build
    hub_functions = {
        jit: cached_greedy_function(
            hub, size["num_layers"], size["num_heads"], new_tokens, jit_compile=jit
        )
        for jit in (False, True)
    }
    tutorial_graph = tutorial.greedy_graph(new_tokens)

    # An end token nobody votes for, so that every row runs all 64 steps.
    # keras-hub and the tutorial never stop; ours stops at its end token, so
    # a candidate is kept only once our full-length rows never contain it.
    voted = set()
    for source in sources.values():
        voted |= set(np.unique(hub_functions[False](source).numpy()))
        voted |= set(np.unique(tutorial_graph(source).numpy()))
    for _ in range(10):
        end_id = next(i for i in range(vocab - 1, 3, -1) if i not in voted)
        ours_tokens = [
            ours.generate(source, max_new_tokens=new_tokens, end_id=end_id)
            for source in sources.values()
        ]
        if all((t != 0).all() for t in ours_tokens):
            break
        for tokens in ours_tokens:
            voted |= set(np.unique(tokens))

    results = {}
    for batch, source in sources.items():
        contenders = {
            "keras_stageshow": lambda: ours.generate(
                source, max_new_tokens=new_tokens, end_id=end_id
            ),
            "keras_stageshow/jit_off": lambda: ours.generate(
                source, max_new_tokens=new_tokens, end_id=end_id, jit_compile=False
            ),
            "keras_hub/jit_off": lambda: hub_functions[False](source).numpy(),
            "keras_hub/jit_on": lambda: hub_functions[True](source).numpy(),
            "tutorial/tf_function": lambda: tutorial_graph(source).numpy(),
        }
        for name, generate in contenders.items():
            tokens = generate()  # trace / compile, and check the length
            # Ours pads a row with 0 after its end token; the peers never
            # stop, and 0 is one of the ids their untrained weights may vote.
            stopped = name.startswith("keras_stageshow") and (tokens == 0).any()
            if tokens.shape != (batch, new_tokens) or stopped:
                raise RuntimeError(f"{name} did not generate {new_tokens} tokens per row")
        seconds = alternate(
            {name: _returning_none(f) for name, f in contenders.items()}, args.rounds
        )
        # The eager loop (what the tutorial runs before exporting) is slow:
        # timed once.
        start = time.perf_counter()
        tutorial.greedy(source, new_tokens)
        seconds["tutorial/eager"] = [time.perf_counter() - start]
        beam = _returning_none(lambda: ours.generate(
            source, max_new_tokens=new_tokens, strategy="beam", num_beams=4, end_id=end_id
        ))
        beam()
        beam_rounds = 1 if args.smoke else 3
        beam_seconds = median(alternate({"beam": beam}, beam_rounds)["beam"])
        rate = {name: batch * new_tokens / median(s) for name, s in seconds.items()}
        hub_best = max(rate["keras_hub/jit_off"], rate["keras_hub/jit_on"])
        tutorial_best = max(rate["tutorial/tf_function"], rate["tutorial/eager"])
        results[f"batch_{batch}"] = {
            "new_tokens_per_second": {name: round(r, 1) for name, r in rate.items()},
            "ms_per_sentence": {
                name: round(1000 * median(s) / batch, 1) for name, s in seconds.items()
            },
            "speedup_vs_keras_hub": round(rate["keras_stageshow"] / hub_best, 2),
            "speedup_vs_tutorial": round(rate["keras_stageshow"] / tutorial_best, 1),
            "beam4_ms_per_sentence": round(1000 * beam_seconds / batch, 1),
            "beam4_cost_vs_greedy": round(
                beam_seconds / median(seconds["keras_stageshow"]), 2
            ),
        }
    print_result({
        "benchmark": "generation_greedy_64_tokens",
        "config": {**size, "vocab": vocab, "source_len": source_len,
                   "new_tokens": new_tokens},
        "onednn": onednn_enabled(),
        "rounds": args.rounds,
        **results,
    }, args)


def _returning_none(function):
    """`alternate` times callables that return None."""

    def call():
        function()

    return call


if __name__ == "__main__":
    main()
