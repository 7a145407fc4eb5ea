"""The awards ceremony's options and their defaults, written once.

`GenerationOptions` is what the command line (`stageshow translate`,
`evaluate`, `export`), `Translator.generate` / `translate`, the samplers and
the SavedModel export read their defaults from. Pure Python (no Keras, no
TensorFlow), so the command line can import it before TensorFlow loads.
"""

import dataclasses

STRATEGIES = ("greedy", "beam", "sample")


@dataclasses.dataclass(frozen=True)
class GenerationOptions:
    """How the awards ceremony announces a translation.

    Args:
        strategy: `"greedy"`, `"beam"` (beam search with the paper's length
            penalty) or `"sample"` (top-k / top-p sampling).
        num_beams: int, beams for `"beam"` (the paper: 4).
        length_penalty: float, the paper's alpha for `"beam"` (0.6):
            hypotheses are ranked by `log P / ((5 + len) / 6) ** alpha`.
        temperature, top_k, top_p: for `"sample"`.
        seed: int or None, makes `"sample"` reproducible.
        max_new_tokens: int or None; None gives each row its source length
            + 50 (the paper), capped at the model's `max_length`.
        batch_size: int, sentences decoded together.
    """

    strategy: str = "greedy"
    num_beams: int = 4
    length_penalty: float = 0.6
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None
    max_new_tokens: int | None = None
    batch_size: int = 32

    def replace(self, **changes):
        """A copy with `changes` applied (`dataclasses.replace`)."""
        return dataclasses.replace(self, **changes)


# The one set of defaults: read `DEFAULTS.num_beams`, never write 4 again.
DEFAULTS = GenerationOptions()
