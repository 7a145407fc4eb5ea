"""The library uses Keras's and TensorFlow's public API only; the one
module allowed to touch a trainer internal says why, and is checked here
against the installed Keras."""

import inspect
import pathlib
import re

import keras

import keras_stageshow
from keras_stageshow.training import distribute

PACKAGE = pathlib.Path(keras_stageshow.__file__).parent
# Private Keras/TensorFlow names that code reaches for when a public API is
# missing (from the list, and the usual suspects).
PRIVATE = re.compile(
    r"keras\.src\b|tensorflow\.python\b|super\(\)\._[a-z]"
    r"|\._(compute_attention|dropout_layer|inverse_sqrt_key_dim|use_bias"
    r"|num_heads|dropout|query_dense|key_dense|value_dense|output_dense"
    r"|distribute_strategy|symbolic_build|maybe_symbolic_build)\b"
)
# The documented workaround module (its docstring names the missing API).
ALLOWED = {PACKAGE / "training" / "distribute.py"}


def test_no_module_reaches_into_private_keras_or_tensorflow_names():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path in ALLOWED:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if PRIVATE.search(line.split("#")[0]):
                offenders.append(f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_the_scan_catches_a_private_access():
    assert PRIVATE.search("output = self._compute_attention(q, k, v)")
    assert PRIVATE.search("from keras.src.layers import Layer")
    assert not PRIVATE.search("output = self._attend(q, k, v)")


def test_distribute_workarounds_still_match_keras():
    """`DistributedTrainingFixes` overrides Keras trainer methods that have no
    public equivalent. If a Keras release renames them or changes their
    arguments, the overrides would silently stop applying: fail here."""
    trainer = keras.Model
    build = inspect.signature(trainer._maybe_symbolic_build)
    assert list(build.parameters) == ["self", "iterator", "data_batch"]
    assert "data_batch" in inspect.signature(trainer._symbolic_build).parameters
    for name in ("train_step", "test_step"):
        assert callable(getattr(trainer, name))
    assert issubclass(keras_stageshow.Transformer, distribute.DistributedTrainingFixes)
