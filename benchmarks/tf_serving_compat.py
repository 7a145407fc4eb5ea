"""TF Serving compatibility: this TensorFlow's export, loaded by TensorFlow 2.20.

A TF Serving server often runs a release behind the TensorFlow that trained
and exported the model. This loads one export in a second Python, a venv
with `tensorflow==2.20.*` and `tensorflow-text==2.20.*` from PyPI (made with
pip on first use, ~600 MB, then reused), translates the same sentences there
and in this process with each text signature (`serving_default`, greedy;
`beam_search`), and counts the identical translations.

The export is `--export DIR` (a version folder), or by default a fresh one of
the committed fixture run `tests/fixtures/main_run` (`export_for_serving`'s
defaults). The sentences are that fixture's texts (blank ones included) and,
when `--data-dir` holds Multi30k, the first `--sentences` of
test_2016_flickr. `--smoke` runs the second side with this Python instead
of the 2.20 venv (no download; for CI).

Prints one JSON line: the versions of both sides, the sentence count, the
identical counts, the largest score difference and the CPU.

    python benchmarks/tf_serving_compat.py [--export serving/translator/1]
        [--venv /tmp/stageshow-tf-2.20] [--tensorflow 2.20] [--smoke]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

from common import FIXTURE_RUN
from common import MULTI30K_DIR
from common import cpu_info
from common import onednn_enabled
from common import parse_args

# Written into the venv once pip has installed everything.
INSTALLED_MARKER = ".stageshow-installed"


def translate_export(path, texts):
    """Each text signature's translations and scores of `texts`, with the
    versions that computed them. It needs TensorFlow and tensorflow-text
    only: both sides run it (the second with `--translate`)."""
    import tensorflow as tf
    import tensorflow_text

    served = tf.saved_model.load(path)
    result = {
        "versions": {
            "tensorflow": tf.__version__,
            "tensorflow_text": tensorflow_text.__version__,
        }
    }
    for name, signature in sorted(served.signatures.items()):
        if "text" in signature.structured_input_signature[1]:
            out = signature(text=tf.constant(texts, tf.string))
            result[name] = {
                "translation": [t.decode("utf-8") for t in out["translation"].numpy()],
                "score": out["score"].numpy().tolist(),
            }
    return result


def other_python(venv, tensorflow):
    """The venv's Python, with `tensorflow==<tensorflow>.*` and the matching
    tensorflow-text installed (made and installed on first use)."""
    python = os.path.join(venv, "bin", "python")
    if not os.path.exists(os.path.join(venv, INSTALLED_MARKER)):
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run(
            [python, "-m", "pip", "install", "--quiet",
             f"tensorflow=={tensorflow}.*", f"tensorflow-text=={tensorflow}.*"],
            check=True, stdout=sys.stderr,
        )
        open(os.path.join(venv, INSTALLED_MARKER), "w").close()
    return python


def translate_in(python, path, texts):
    """`translate_export` run by another Python (this script, `--translate`)."""
    result = subprocess.run(
        [python, os.path.abspath(__file__), "--translate", path],
        input=json.dumps(texts), capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{python} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def sentences(data_dir, count):
    """The fixture's texts, then Multi30k test_2016_flickr's first `count`
    German sentences when `data_dir` holds them."""
    with open(os.path.join(FIXTURE_RUN, "expected.json"), encoding="utf-8") as f:
        texts = json.load(f)["texts"]
    if count and os.path.exists(os.path.join(data_dir, "test_2016_flickr.de.gz")):
        from keras_stageshow.datasets import load_multi30k

        texts += load_multi30k("test_2016_flickr", data_dir=data_dir)[0][:count]
    return texts


def compare(reference, other):
    """Per text signature: how many translations are identical, and the
    largest score difference."""
    identical, score_difference = {}, {}
    for name in reference:
        if name == "versions":
            continue
        pairs = zip(reference[name]["translation"], other[name]["translation"])
        identical[name] = sum(a == b for a, b in pairs)
        score_difference[name] = max(
            (abs(a - b) for a, b in zip(reference[name]["score"], other[name]["score"])),
            default=0.0,
        )
    return identical, score_difference


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export", help="a version folder; by default the fixture run's export")
    parser.add_argument("--venv", help="the second Python's venv (default /tmp/stageshow-tf-<version>)")
    parser.add_argument("--tensorflow", default="2.20", help="its TensorFlow release")
    parser.add_argument("--data-dir", default=MULTI30K_DIR)
    parser.add_argument("--sentences", type=int, default=200, help="of test_2016_flickr")
    parser.add_argument("--translate", metavar="EXPORT", help=argparse.SUPPRESS)
    # --smoke: this Python on both sides (no venv, no Multi30k sentences).
    args = parse_args(parser, smoke_data=False)

    if args.translate:  # the second side: texts on stdin, one JSON line out
        print(json.dumps(translate_export(args.translate, json.loads(sys.stdin.read()))))
        return

    texts = sentences(args.data_dir, 0 if args.smoke else args.sentences)
    python = sys.executable if args.smoke else other_python(
        args.venv or os.path.join(tempfile.gettempdir(), f"stageshow-tf-{args.tensorflow}"),
        args.tensorflow,
    )
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # the export's
    from keras_stageshow.serving import export_for_serving
    from keras_stageshow.serving import read_export_description

    with tempfile.TemporaryDirectory() as base:
        path = args.export or export_for_serving(
            FIXTURE_RUN, os.path.join(base, "translator")
        )
        exported_with = read_export_description(path).get("versions")
        reference = translate_export(path, texts)
        other = translate_in(python, path, texts)
    identical, score_difference = compare(reference, other)
    print(json.dumps({
        "benchmark": "tf_serving_compat",
        "smoke": args.smoke,
        "export": args.export or "tests/fixtures/main_run (export_for_serving defaults)",
        "exported_with": exported_with,
        "this_process": reference["versions"],
        "loaded_with": other["versions"],
        "sentences": len(texts),
        "identical": identical,
        "max_score_difference": score_difference,
        "onednn": onednn_enabled(),
        "cpu": cpu_info(),
    }))


if __name__ == "__main__":
    main()
