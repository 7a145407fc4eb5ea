"""Training under JAX's `keras.distribution.DataParallel` on two devices gives
one device's loss curve for the same global batch (README, "Running at
scale", JAX backend).

Why they match: DataParallel keeps a copy of every weight on each device
and splits each global batch of 32 into two halves of 16, one a device. The
train step stays one jit-compiled program over the global batch, which XLA
partitions: the loss is the masked token mean over the whole global batch,
and the gradients (each device's partial sums, all-reduced) are that mean's,
so both copies of the weights take one device's update. Only the order of
float sums differs, hence rtol=1e-4 (as tests/test_distribution.py does for
tf.distribute). Dropout is off and both runs start from the same seed.

The two devices are virtual CPUs
(`XLA_FLAGS=--xla_force_host_platform_device_count=2`), which JAX reads when
it starts: both trainings run in a fresh process. Runs under `KERAS_BACKEND=jax` (the
CI's backend step, .ci/run); skipped under the other backends."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from conftest import script_output

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "jax",
    reason="keras.distribution.DataParallel needs KERAS_BACKEND=jax",
)

TESTS = os.path.dirname(os.path.abspath(__file__))

# Trains conftest's tiny model (one layer, dropout off) twice, from the
# same seed on the same padded batches: without a distribution, then under
# DataParallel over both devices. Prints the per-epoch losses.
TRAIN = r"""
import json, sys
sys.path.insert(0, sys.argv[1])  # tests/, for conftest

import jax
import keras
from conftest import tiny_transformer
from keras_stageshow.datasets import copy_or_reverse

(source, target_in), target_out = copy_or_reverse(128, seed=1)

def train(distribution):
    keras.distribution.set_distribution(distribution)
    keras.utils.set_random_seed(3)
    model = tiny_transformer(vocab=24, num_layers=1)
    model.compile(warmup_steps=50)
    history = model.fit(
        (source, target_in), target_out, batch_size=32, epochs=2,
        shuffle=False, verbose=0,
    ).history
    # How many devices hold the weights: 2 when DataParallel replicated them.
    copies = len(model.trainable_variables[0].value.sharding.device_set)
    return {"loss": history["loss"], "weight_devices": copies}

print(json.dumps({
    "devices": jax.device_count(),
    "single": train(None),
    "data_parallel": train(keras.distribution.DataParallel()),
}))
"""


def test_data_parallel_matches_one_device():
    env = {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "JAX_PLATFORMS": "cpu",  # the virtual devices are CPUs, even beside a GPU
        "XLA_FLAGS": " ".join(
            filter(None, [os.environ.get("XLA_FLAGS"),
                          "--xla_force_host_platform_device_count=2"])
        ),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    process = subprocess.Popen(
        [sys.executable, "-c", TRAIN, TESTS], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        runs = script_output(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert runs["devices"] == 2
    assert runs["single"]["weight_devices"] == 1
    assert runs["data_parallel"]["weight_devices"] == 2
    np.testing.assert_allclose(
        runs["data_parallel"]["loss"], runs["single"]["loss"], rtol=1e-4
    )
