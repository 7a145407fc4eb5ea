"""TF Serving's own files in an export's `assets.extra/`: what the model
server reads beside the SavedModel. (`serving.py` writes the SavedModel and
our `stageshow.json`, and calls this module for the rest.)

- `tf_serving_warmup_requests` (the name TF Serving looks for): a TFRecord
  of `PredictionLog`s, the `tensorflow-serving-api` protos. TF Serving
  replays them when it loads the version, before it reports the version
  available, so the first client's request does not pay for initialisation
  (the graph's first run; with `--jit-compile`, the XLA compilation of a
  shape bucket). Each text signature gets a short, a long (cut to the
  model's `max_length`), a blank and a batched request.
- `batching_parameters.txt`: a `BatchingParameters` text proto for
  `tensorflow_model_server --enable_batching
  --batching_parameters_file=...`, which merges concurrent requests into
  batches of the export's `batch_size` sentences (what its graph decodes
  together).
"""

import os

import tensorflow as tf
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_log_pb2

from keras_stageshow.decoding.ceremony import REQUEST_CHUNK
from keras_stageshow.files import write_atomically
from keras_stageshow.files import write_text_atomically

ASSETS_EXTRA = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"
BATCHING_FILE = "batching_parameters.txt"

# The warm-up requests' words; their language does not matter (the answers
# are discarded), only how many subwords they make.
_SENTENCE = "The show goes on tonight."
# How long a request waits for others to fill its batch: small against a
# translation's tens to hundreds of milliseconds. A starting point to tune.
_BATCH_TIMEOUT_MICROS = 5000


def warmup_texts(batch_size, max_length):
    """The strings of each warm-up request, by kind."""
    return {
        "short": [_SENTENCE],
        # More subwords than `max_length`: cut, and decoded for the longest.
        "long": [" ".join([_SENTENCE] * max_length)],
        "blank": ["", " "],
        "batched": [_SENTENCE] * batch_size,
    }


def write_warmup_requests(version_dir, signatures, input_name, batch_size, max_length):
    """Writes `assets.extra/tf_serving_warmup_requests`: each of
    `warmup_texts` as a `Predict` request to each of `signatures` (names of
    signatures taking strings as `input_name`)."""

    def write(path):
        with tf.io.TFRecordWriter(path) as records:
            for signature in signatures:
                for texts in warmup_texts(batch_size, max_length).values():
                    request = predict_pb2.PredictRequest()
                    request.model_spec.signature_name = signature
                    request.inputs[input_name].CopyFrom(
                        tf.make_tensor_proto([t.encode() for t in texts], tf.string)
                    )
                    log = prediction_log_pb2.PredictionLog(
                        predict_log=prediction_log_pb2.PredictLog(request=request)
                    )
                    records.write(log.SerializeToString())

    write_atomically(os.path.join(version_dir, ASSETS_EXTRA, WARMUP_FILE), write)


def batching_parameters(batch_size):
    """The `BatchingParameters` text proto for an export that decodes
    `batch_size` sentences together."""
    return f"""\
# TF Serving's batching parameters for this export:
#   tensorflow_model_server --enable_batching=true \\
#     --batching_parameters_file=<this file> ...
# The server merges concurrent requests along dimension 0 (sentences). A
# batch runs at most the export's batch size, what its graph decodes together.
max_execution_batch_size {{ value: {batch_size} }}
# A larger request is split across batches; it may hold this many sentences.
enable_large_batch_splitting {{ value: true }}
max_batch_size {{ value: {max(REQUEST_CHUNK, batch_size)} }}
# How long a request waits for others to fill its batch; tune it.
batch_timeout_micros {{ value: {_BATCH_TIMEOUT_MICROS} }}
# Left to TF Serving's defaults: num_batch_threads (one per core) and
# max_enqueued_batches.
"""


def write_batching_parameters(version_dir, batch_size):
    """Writes `assets.extra/batching_parameters.txt`."""
    write_text_atomically(
        os.path.join(version_dir, ASSETS_EXTRA, BATCHING_FILE),
        batching_parameters(batch_size),
    )
