"""The awards ceremony: decoding, written once (`ceremony.py`: the core every
entry point calls; `strategies.py`: the cached loops)."""

from keras_stageshow.decoding.ceremony import AwardsCeremony
from keras_stageshow.decoding.ceremony import ceremony_for
from keras_stageshow.decoding.ceremony import check_options
from keras_stageshow.decoding.ceremony import generate
