"""Runs saved by earlier versions load and translate exactly as they did.

`fixtures/main_run` was trained and saved by commit 03e620b, before the
decoding core, the composed `Rehearsal` and the explicit masks (see
fixtures/README.md); `expected.json` is what that code produced.
"""

import json
import os
import warnings

import numpy as np
import pytest

import keras_stageshow as ks

pytestmark = pytest.mark.tf_only  # Translator: the tokenizers

RUN = os.path.join(os.path.dirname(__file__), "fixtures", "main_run")


@pytest.fixture(scope="module")
def expected():
    with open(os.path.join(RUN, "expected.json"), encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def translator():
    with warnings.catch_warnings():
        # A variable the file has but the model no longer finds (or the
        # reverse) is only a warning in Keras; here it is a failure.
        warnings.simplefilter("error")
        return ks.Translator.load(RUN)


@pytest.mark.parametrize("name", ["greedy", "greedy_jit_off", "beam", "sample"])
def test_saved_run_translates_as_the_code_that_saved_it(translator, expected, name):
    case = expected[name]
    translations, scores = translator.translate(
        expected["texts"], batch_size=8, return_scores=True, **case["options"]
    )
    assert translations == case["translations"]
    np.testing.assert_allclose(scores, case["scores"], rtol=1e-4, atol=1e-4)


def test_saved_run_gives_the_same_logits_and_beam_tokens(translator, expected):
    source = np.array(expected["source_ids"], "int32")
    np.testing.assert_array_equal(translator.encode(expected["texts"][:4]), source)
    target = np.array(expected["target_ids"], "int32")
    logits = np.asarray(translator.model((source, target), training=False))
    real = target != 0  # what the logits at padded targets are is no promise
    np.testing.assert_allclose(
        logits[:, :, :12][real], np.array(expected["logits_rows"])[real], atol=1e-4
    )
    tokens = translator.model.generate(source, strategy="beam")
    np.testing.assert_array_equal(tokens, expected["generate_beam_tokens"])
