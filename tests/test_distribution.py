"""Training on TensorFlow's distribution engine gives one device's loss curve
for the same global batch: MirroredStrategy on two logical CPUs, and
MultiWorkerMirroredStrategy with two worker processes on 127.0.0.1.

Each case runs in fresh processes (logical devices and TF_CONFIG must be set
before TensorFlow starts)."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from conftest import script_output

pytestmark = pytest.mark.tf_only  # tf.distribute

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}

# Trains the same small model, from the same seed, on the same padded
# batches (every batch has padding, unevenly spread over the replicas), and
# prints the loss of each epoch. argv: "single", "mirrored" or "worker".
TRAIN = r"""
import json, os, sys
import tensorflow as tf

mode = sys.argv[1]
if mode == "mirrored":
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
elif mode == "worker":
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
else:
    strategy = tf.distribute.get_strategy()

import keras
import keras_stageshow as ks
from keras_stageshow.datasets import copy_or_reverse

(source, target_in), target_out = copy_or_reverse(512, seed=1)
dataset = tf.data.Dataset.from_tensor_slices(((source, target_in), target_out)).batch(64)
if mode == "worker":
    # Each worker takes its half of every global batch.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA
    )
    dataset = dataset.with_options(options)
with strategy.scope():
    keras.utils.set_random_seed(3)
    model = ks.Transformer(
        24, 24, num_layers=1, d_model=32, num_heads=2, d_ff=64,
        dropout_rate=0.0, max_length=32,
    )
    model.compile(warmup_steps=50)
history = model.fit(dataset, epochs=3, verbose=0).history
print(json.dumps({"loss": history["loss"], "replicas": strategy.num_replicas_in_sync}))
"""


def run(*args, env=None):
    return subprocess.Popen(
        [sys.executable, "-c", TRAIN, *args], env=env or ENV,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


@pytest.fixture(scope="module")
def started(request):
    """The one-device run, and the MirroredStrategy run when its test is
    selected, started together with the module: they train side by side
    on the two cores. Maps a mode to its process."""
    selected = {item.originalname for item in request.session.items}
    processes = {"single": run("single")}
    if "test_mirrored_strategy_matches_one_device" in selected:
        processes["mirrored"] = run("mirrored")
    yield processes
    for process in processes.values():
        if process.poll() is None:
            process.kill()
            process.communicate()


@pytest.fixture(scope="module")
def single_device(started):
    return script_output(started["single"])


def test_mirrored_strategy_matches_one_device(started, single_device):
    mirrored = script_output(started["mirrored"])
    assert mirrored["replicas"] == 2
    np.testing.assert_allclose(mirrored["loss"], single_device["loss"], rtol=1e-4)


def free_ports(count):
    """Distinct free ports (each socket stays open until all are chosen)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def test_multi_worker_mirrored_strategy_matches_one_device(single_device):
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    processes = []
    try:
        for index in range(2):
            config = {
                "cluster": {"worker": workers},
                "task": {"type": "worker", "index": index},
            }
            processes.append(
                run("worker", env={**ENV, "TF_CONFIG": json.dumps(config)})
            )
        outcomes = [script_output(p) for p in processes]
    finally:
        for process in processes:  # a failed worker must not leave the other waiting
            if process.poll() is None:
                process.kill()
    for outcome in outcomes:
        assert outcome["replicas"] == 2
        np.testing.assert_allclose(outcome["loss"], single_device["loss"], rtol=1e-4)
