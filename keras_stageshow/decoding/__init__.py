"""The awards ceremony: decoding, written once (`ceremony.py`: the core every
entry point calls; `samplers.py`: the strategies `compile(sampler=...)`
takes; `strategies.py`: their cached loops)."""

from keras_stageshow.decoding.ceremony import AwardsCeremony
from keras_stageshow.decoding.ceremony import ceremony_for
from keras_stageshow.decoding.generate_ids import generate
from keras_stageshow.decoding.samplers import BeamSampler
from keras_stageshow.decoding.samplers import GreedySampler
from keras_stageshow.decoding.samplers import RandomSampler
