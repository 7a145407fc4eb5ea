"""The awards ceremony's strategies as samplers: what
`Translator.compile(sampler=...)` takes.

Each is a `keras_hub.samplers.Sampler` subclass, so keras-hub's
`compile(sampler=...)` accepts it and `keras.saving` serializes it, but none
runs keras-hub's loop (`Sampler.__call__`): that loop writes the new tokens
into a fixed-length prompt and stops all rows at one `max_length`, while
the ceremony needs

- a limit per row (each sentence may vote its own source length + 50, the
  paper's maximum output length);
- the paper's length penalty in beam search (keras-hub's `BeamSampler`
  ranks by the raw log-probability, which favours short translations);
- a seeded draw that does not depend on earlier calls (keras-hub's random
  samplers keep their seed in a variable that each call advances).

So each sampler overrides only the public `__call__`, with keras-hub's
first arguments (`next`, the step the task supplies, then the cache) and
the ceremony's per-row `limits`; the loops are `decoding/strategies.py`'s.
`next(rumour, cache, index) -> (logits, cache)` votes one position: the
task (the `Translator`'s `AwardsCeremony`) builds it from the backbone, so
a strategy never sees the model.
"""

import keras
import keras_hub

from keras_stageshow.decoding import strategies
from keras_stageshow.generation_options import DEFAULTS
from keras_stageshow.generation_options import STRATEGIES
from keras_stageshow.layers.utils import is_int


class _CeremonySampler(keras_hub.samplers.Sampler):
    """What every strategy of the ceremony shares: its hashable `options`
    (the key of the traced loop), `num_beams` (rows per sentence) and
    `needs_uniform` (whether the loop draws random numbers)."""

    strategy = None
    num_beams = 1
    needs_uniform = False

    def options(self):
        """The options that decide the traced loop, as a hashable tuple."""
        return (self.strategy, *sorted(self.get_config().items()))

    def check(self, vocabulary_size):
        """Raises a clear error when the options do not fit a vocabulary of
        `vocabulary_size` tokens; returns the sampler."""
        return self


@keras.saving.register_keras_serializable(package="keras_stageshow")
class GreedySampler(_CeremonySampler):
    """Greedy decoding: each step votes the most likely token.

    Example:
    >>> translator.compile(sampler=GreedySampler())   # or sampler="greedy"
    """

    strategy = "greedy"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)

    def __call__(self, next, cache, limits, steps, start_id, end_id, uniform=None):
        return strategies.greedy_search(next, cache, limits, steps, start_id, end_id)

    def get_config(self):
        return {}


@keras.saving.register_keras_serializable(package="keras_stageshow")
class BeamSampler(_CeremonySampler):
    """Beam search with the paper's length penalty.

    Args:
        num_beams: int, hypotheses kept per sentence (the paper: 4).
        length_penalty: float, alpha (the paper: 0.6): hypotheses are
            ranked by `log P / ((5 + len) / 6) ** alpha`.

    Example:
    >>> translator.compile(sampler=BeamSampler(num_beams=5, length_penalty=1.0))
    """

    strategy = "beam"

    def __init__(
        self, num_beams=DEFAULTS.num_beams, length_penalty=DEFAULTS.length_penalty,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not is_int(num_beams) or num_beams < 1:
            raise ValueError(f"`num_beams` must be an int >= 1; received {num_beams!r}.")
        if not isinstance(length_penalty, (int, float)) or not length_penalty >= 0:
            raise ValueError(
                f"`length_penalty` must be a number >= 0; received {length_penalty!r}."
            )
        self.num_beams = int(num_beams)
        self.length_penalty = float(length_penalty)

    def check(self, vocabulary_size):
        if self.num_beams > vocabulary_size // 2:
            raise ValueError(
                f"`num_beams` must be an int in [1, {vocabulary_size // 2}] "
                f"(half the target vocabulary); received {self.num_beams}."
            )
        return self

    def __call__(self, next, cache, limits, steps, start_id, end_id, uniform=None):
        return strategies.beam_search(
            next, cache, limits, steps, start_id, end_id, self.num_beams,
            self.length_penalty,
        )

    def get_config(self):
        return {"num_beams": self.num_beams, "length_penalty": self.length_penalty}


@keras.saving.register_keras_serializable(package="keras_stageshow")
class RandomSampler(_CeremonySampler):
    """Sampling: each step draws the next token from the model's
    distribution (divided by `temperature`), restricted to the `top_k`
    most likely tokens and/or the smallest set whose probability reaches
    `top_p` (nucleus sampling).

    Args:
        top_k: int or None.
        top_p: float in (0, 1] or None.
        temperature: float > 0.
        seed: int or None; with a seed the same call gives the same
            translations, whatever was generated before.

    Example:
    >>> translator.compile(sampler=RandomSampler(top_p=0.9, seed=1))
    """

    strategy = "sample"
    needs_uniform = True

    def __init__(
        self, top_k=DEFAULTS.top_k, top_p=DEFAULTS.top_p,
        temperature=DEFAULTS.temperature, seed=DEFAULTS.seed, **kwargs,
    ):
        super().__init__(temperature=temperature, **kwargs)
        if not isinstance(temperature, (int, float)) or not temperature > 0:
            raise ValueError(f"`temperature` must be > 0; received {temperature!r}.")
        if top_k is not None and not (is_int(top_k) and top_k >= 1):
            raise ValueError(f"`top_k` must be an int >= 1 or None; received {top_k!r}.")
        if top_p is not None and not (isinstance(top_p, (int, float)) and 0 < top_p <= 1):
            raise ValueError(f"`top_p` must be in (0, 1] or None; received {top_p!r}.")
        if seed is not None and not is_int(seed):
            raise ValueError(f"`seed` must be an int or None; received {seed!r}.")
        self.top_k = None if top_k is None else int(top_k)
        self.top_p = None if top_p is None else float(top_p)
        self.temperature = float(temperature)
        self.seed = seed

    def check(self, vocabulary_size):
        if self.top_k is not None and self.top_k > vocabulary_size:
            raise ValueError(
                f"`top_k` must be an int in [1, {vocabulary_size}] or None; "
                f"received {self.top_k}."
            )
        return self

    def options(self):
        # The seed changes the random numbers, not the traced loop.
        return (self.strategy, self.top_k, self.top_p, self.temperature)

    def __call__(self, next, cache, limits, steps, start_id, end_id, uniform=None):
        return strategies.greedy_search(
            next, cache, limits, steps, start_id, end_id, uniform=uniform,
            temperature=self.temperature, top_k=self.top_k, top_p=self.top_p,
        )

    def get_config(self):
        return {
            "top_k": self.top_k, "top_p": self.top_p,
            "temperature": self.temperature, "seed": self.seed,
        }


def TopKSampler(k=5, temperature=DEFAULTS.temperature, seed=DEFAULTS.seed):
    """A `RandomSampler` over the `k` most likely tokens (keras-hub's name)."""
    return RandomSampler(top_k=k, temperature=temperature, seed=seed)


def TopPSampler(p=0.1, k=None, temperature=DEFAULTS.temperature, seed=DEFAULTS.seed):
    """A `RandomSampler` over the nucleus of probability `p`, optionally
    within the `k` most likely tokens (keras-hub's name)."""
    return RandomSampler(top_k=k, top_p=p, temperature=temperature, seed=seed)


# `compile(sampler="...")` names, keras-hub's included.
_NAMES = {
    "greedy": GreedySampler,
    "beam": BeamSampler,
    "sample": RandomSampler,
    "random": RandomSampler,
    "top_k": TopKSampler,
    "top_p": TopPSampler,
}


def get(identifier):
    """A sampler from a name (`"greedy"`, `"beam"`, `"sample"`, `"top_k"`,
    `"top_p"`), a serialized config, or a sampler of this module."""
    if isinstance(identifier, _CeremonySampler):
        return identifier
    if isinstance(identifier, dict):
        return keras.saving.deserialize_keras_object(identifier)
    if isinstance(identifier, str) and identifier in _NAMES:
        return _NAMES[identifier]()
    raise ValueError(
        f"`sampler` must be one of {sorted(_NAMES)} or a sampler of "
        "`keras_stageshow.decoding.samplers` (GreedySampler, BeamSampler, "
        "RandomSampler); received "
        f"{identifier!r}. keras-hub's own samplers run a loop without per-row "
        "limits or the length penalty, which the awards ceremony needs."
    )


def from_options(strategy=DEFAULTS.strategy, *, num_beams=DEFAULTS.num_beams,
                 length_penalty=DEFAULTS.length_penalty,
                 temperature=DEFAULTS.temperature, top_k=DEFAULTS.top_k,
                 top_p=DEFAULTS.top_p, seed=DEFAULTS.seed):
    """The sampler for `translate`'s / the command line's options (each
    strategy reads only its own)."""
    if strategy not in STRATEGIES:
        raise ValueError(
            f"`strategy` must be one of {STRATEGIES}; received {strategy!r}."
        )
    if strategy == "beam":
        return BeamSampler(num_beams=num_beams, length_penalty=length_penalty)
    if strategy == "sample":
        return RandomSampler(top_k=top_k, top_p=top_p, temperature=temperature, seed=seed)
    return GreedySampler()
