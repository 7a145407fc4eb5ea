"""CTranslate2 as our CPU yardstick: a trained RUN_DIR converted to a
CTranslate2 model and decoded by both engines on the same sentences.

The conversion builds `ctranslate2.specs.TransformerSpec` from our weights
directly (`transformer_spec`; the table in benchmarks/README.md, "CTranslate2
yardstick"): the same layers, norms, embeddings, our sinusoid table as it is,
the embedding scale sqrt(d_model), post- or pre-norm as the model was built,
the tied (and shared) embeddings. Our decoding never votes padding (its
logit gets -1e9); the converted projection carries that as a bias.

First check: the greedy tokens of both engines on the same source ids (ours
from `Transformer.generate`, CTranslate2's at batch 1 with each sentence's
own limit, source length + 50 capped at `max_length`, as ours). Small float
differences can flip a rare near-tie, so the full mode reports the count;
`tests/test_ctranslate2_yardstick.py` requires identity on the fixture.

Then, on the same sentences, with two threads each (CTranslate2
`intra_threads=2, inter_threads=1`; TensorFlow at its default, one thread a
core: 2 on the benchmark machine), warm, turn by turn in a rotating order
(`common.alternate`):

- latency: one sentence a call, greedy, median ms over the sentences;
- greedy and beam-4 batches of 32: sentences per second;
- BLEU of the batch-32 translations (sacreBLEU cased 13a, lowercased 13a);

for our library (`Translator.translate`), our served graph (the default
`export_for_serving` SavedModel, `serving_default` and `beam_search`,
loaded with `tf.saved_model.load`), CTranslate2 float32 and CTranslate2
int8 (`compute_type="int8"`). Every engine goes from text to text: the
CTranslate2 path includes SentencePiece (the `sentencepiece` library, the
same models; checked to give our source ids) and `translate_batch`.

Beam search: CTranslate2 divides log P by `length ** length_penalty`, not by
GNMT's `((5 + length) / 6) ** alpha` (ours and the paper's), and has no
option for GNMT's. So it returns its `num_beams` finished hypotheses
(`num_hypotheses=num_beams`, `return_end_token=True` so that the length
counts the end token as ours does) and they are ranked here by GNMT's
penalty with alpha 0.6: the same formula on CTranslate2's hypotheses. What
still differs is when a sentence stops: CTranslate2 stops at its first
`num_beams` finished hypotheses (`patience=1`), ours when no live hypothesis
can beat its `num_beams`-th finished one.

Prints one JSON line; the speed ratios are served speed over CTranslate2's
(above 1: the served graph is faster).

    python benchmarks/ctranslate2_yardstick.py --run RUN_DIR
    python benchmarks/ctranslate2_yardstick.py --smoke
"""

import argparse
import os
import re
import statistics
import tempfile
import time

import common
from serving import saved_model_runner
from serving import translator_runner
from keras_stageshow.special_ids import END_ID
from keras_stageshow.special_ids import PAD_ID
from keras_stageshow.special_ids import START_ID
from keras_stageshow.special_ids import UNK_ID

SMOKE_SENTENCES = 16
BATCH = 32
THREADS = 2
ENGINES = ("library", "served", "ct2_float32", "ct2_int8")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="a trained RUN_DIR (required unless --smoke)")
    parser.add_argument("--data-dir", default=common.MULTI30K_DIR)
    parser.add_argument("--split", default="val", help="Multi30k split (val)")
    parser.add_argument(
        "--sentences", type=int,
        help=f"the first N sentences of the split (default: all; --smoke: "
        f"{SMOKE_SENTENCES})",
    )
    # --smoke: the committed fixture run, 16 sentences.
    args = common.parse_args(
        parser, argv, run=common.FIXTURE_RUN, sentences=SMOKE_SENTENCES
    )
    if not args.run:
        parser.error("--run RUN_DIR is required (or --smoke for the fixture run)")
    if args.sentences is not None and args.sentences < 1:
        parser.error("--sentences must be >= 1")
    common.print_result(yardstick(args), args)


def yardstick(args):
    import ctranslate2
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (the served graph's ops)

    from keras_stageshow import Translator
    from keras_stageshow import export_for_serving
    from keras_stageshow.datasets import load_multi30k
    from keras_stageshow.generation_options import DEFAULTS
    from keras_stageshow.run_dir import read_run

    source_lang, target_lang = direction(read_run(args.run))
    sources, references = load_multi30k(
        args.split, source=source_lang, target=target_lang, data_dir=args.data_dir
    )
    sources, references = sources[: args.sentences], references[: args.sentences]
    translator = Translator.load(args.run)
    model = translator.backbone
    num_beams, alpha = DEFAULTS.num_beams, DEFAULTS.length_penalty

    with tempfile.TemporaryDirectory() as base:
        ct2_dir = convert(translator, os.path.join(base, "ct2"))
        served = tf.saved_model.load(
            export_for_serving(translator, os.path.join(base, "served"))
        )
        ct2 = {
            f"ct2_{compute}": ctranslate2.Translator(
                ct2_dir, device="cpu", compute_type=compute,
                intra_threads=THREADS, inter_threads=1,
            )
            for compute in ("float32", "int8")
        }
        pipeline = Ct2Pipeline(translator)

        # The same source ids: ours, and what CTranslate2's path makes.
        source_ids = ids_per_row(translator.encode(sources))
        tokenization_same = sum(
            a == b for a, b in zip(pipeline.source_ids(sources), source_ids)
        )
        identical = identity(model, source_ids, pipeline, ct2, "greedy")
        beam_identical = identity(
            model, source_ids, pipeline, ct2, "beam",
            num_beams=num_beams, length_penalty=alpha,
        )

        runners = {
            # num_beams and length penalty: DEFAULTS', as the export's.
            "library": translator_runner(translator, num_beams),
            "served": saved_model_runner(served),
            **{name: pipeline.runner(t, num_beams, alpha) for name, t in ct2.items()},
        }
        # Warm: one sentence of each source length (every shape bucket the
        # library traces, every first call of a graph), and every batch.
        one_a_length = list({len(ids): s for ids, s in zip(source_ids, sources)}.values())
        measure(runners, one_a_length, sources)
        latency, outputs, seconds = measure(runners, sources, sources)

    n = len(sources)
    latency_ms = {k: round(1000 * statistics.median(v), 2) for k, v in latency.items()}
    greedy_sps = {k: round(n / v, 1) for k, v in seconds["greedy"].items()}
    beam_sps = {k: round(n / v, 1) for k, v in seconds["beam"].items()}
    scores, signature = bleu(outputs, references)

    def ratios(ct2_name):
        return {
            "latency_batch1": round(latency_ms[ct2_name] / latency_ms["served"], 3),
            "greedy_batch32": round(greedy_sps["served"] / greedy_sps[ct2_name], 3),
            f"beam{num_beams}_batch32": round(beam_sps["served"] / beam_sps[ct2_name], 3),
        }

    return {
        "benchmark": "ctranslate2_yardstick",
        "smoke": bool(args.smoke),
        "run": os.path.abspath(args.run),
        "split": args.split,
        "direction": f"{source_lang}-{target_lang}",
        "sentences": n,
        "model": {
            "parameters": model.count_params(),
            "num_layers": model.num_layers,
            "d_model": model.d_model,
            "num_heads": model.num_heads,
            "d_ff": model.d_ff,
            "vocabulary": [model.input_vocab_size, model.target_vocab_size],
            "norm_first": model.norm_first,
            "share_embeddings": model.share_embeddings,
        },
        "ctranslate2_version": ctranslate2.__version__,
        "threads": {
            "ctranslate2": {"intra_threads": THREADS, "inter_threads": 1},
            "tensorflow": {
                "intra_op": tf.config.threading.get_intra_op_parallelism_threads()
                or "default (one a core)",
                "inter_op": tf.config.threading.get_inter_op_parallelism_threads()
                or "default",
            },
        },
        "ct2_tokenization_same_ids": f"{tokenization_same}/{n}",
        "greedy_tokens_identical": {k: f"{v}/{n}" for k, v in identical.items()},
        "beam_tokens_identical": {k: f"{v}/{n}" for k, v in beam_identical.items()},
        "greedy_translations_identical_to_library": {
            name: f"{same(outputs['greedy'][name], outputs['greedy']['library'])}/{n}"
            for name in ENGINES[1:]
        },
        "beam": {
            "num_beams": num_beams,
            "length_penalty": alpha,
            "ours": "log P / ((5 + len) / 6) ** alpha, len with the end token",
            "ct2": (
                "num_hypotheses=num_beams, return_end_token=True, ranked here "
                "by the same GNMT penalty; patience=1 (stops at num_beams "
                "finished hypotheses)"
            ),
        },
        "latency_batch1_median_ms": latency_ms,
        "greedy_batch32_sentences_per_second": greedy_sps,
        f"beam{num_beams}_batch32_sentences_per_second": beam_sps,
        "bleu": {
            "greedy_batch32": scores["greedy"],
            f"beam{num_beams}_batch32": scores["beam"],
            "sacrebleu_signature": signature,
        },
        "speed_ratio_served_over_ct2_float32": ratios("ct2_float32"),
        "speed_ratio_served_over_ct2_int8": ratios("ct2_int8"),
        "cpu": common.cpu_info(),
        "onednn": common.onednn_enabled(),
    }


def direction(run):
    """(source, target) languages of a Multi30k run (`run.json`'s "data",
    e.g. "multi30k de-en (first 12000 pairs)")."""
    match = re.search(r"multi30k (de|en)-(de|en)", str(run.get("data", "")))
    if not match:
        raise SystemExit(
            f"ctranslate2_yardstick: the run's data is {run.get('data')!r}, "
            "not Multi30k (de-en or en-de)."
        )
    return match.group(1), match.group(2)


# -- the conversion --------------------------------------------------------


def transformer_spec(model, source_vocabulary, target_vocabulary):
    """`ctranslate2.specs.TransformerSpec` holding `model`'s weights (a
    keras_stageshow `Transformer`), with the two vocabularies (lists of
    SentencePiece pieces in id order: pad, unk, start, end first)."""
    import keras
    import numpy as np
    from ctranslate2.specs import common_spec
    from ctranslate2.specs import transformer_spec as specs

    from keras_stageshow.decoding.strategies import NEG_INF

    activations = {
        "relu": common_spec.Activation.RELU, "gelu": common_spec.Activation.GELU
    }
    if model.activation not in activations:
        raise ValueError(
            f"activation {model.activation!r} has no CTranslate2 counterpart here "
            f"(one of {sorted(activations)})."
        )

    def value(variable):
        return keras.ops.convert_to_numpy(variable).astype("float32")

    encoder = specs.TransformerEncoderSpec(
        model.num_layers, model.num_heads, pre_norm=model.norm_first,
        activation=activations[model.activation],
    )
    decoder = specs.TransformerDecoderSpec(
        model.num_layers, model.num_heads, pre_norm=model.norm_first,
        activation=activations[model.activation],
    )
    show, assessment = model.stage_show, model.oscar_assessment
    # Our sinusoids (interleaved sin/cos), one row a position; CTranslate2's
    # own table would be [sin | cos].
    table = value(show.preprocess.positional_encoding(model.max_length))[0]
    for stack, spec in ((show, encoder), (assessment, decoder)):
        embeddings = spec.embeddings
        embeddings = embeddings[0] if isinstance(embeddings, list) else embeddings
        embeddings.weight = value(stack.preprocess.token_embedding.embeddings)
        spec.scale_embeddings = True  # x sqrt(d_model), before the positions
        spec.position_encodings.encodings = table
        if model.norm_first:  # pre-norm: the LayerNorm after the last round
            set_layer_norm(spec.layer_norm, stack.final_norm, value)
    for layer, spec in zip(show.practice_rounds, encoder.layer):
        set_attention(spec.self_attention, layer.rehearsal, value, self_attention=True)
        set_layer_norm(
            spec.self_attention.layer_norm, layer.rehearsal_adjust.layer_norm, value
        )
        set_feed_forward(spec.ffn, layer.crew_discussion, value)
    for layer, spec in zip(assessment.assessment_rounds, decoder.layer):
        questions, show_watch = layer.ask_questions, layer.watch_show
        set_attention(spec.self_attention, questions.rehearsal, value, self_attention=True)
        set_layer_norm(spec.self_attention.layer_norm, questions.adjust.layer_norm, value)
        set_attention(spec.attention, show_watch.rehearsal, value, self_attention=False)
        set_layer_norm(spec.attention.layer_norm, show_watch.adjust.layer_norm, value)
        set_feed_forward(spec.ffn, layer.assessment_discussion, value)
    # Voting: the target embedding is the projection (tied; CTranslate2
    # stores the matrix once). Its bias is our decoding's
    # `never_vote_padding`: NEG_INF added to the padding logit.
    decoder.projection.weight = value(model.voting.token_embedding.embeddings)
    never_vote_padding = np.zeros(model.target_vocab_size, "float32")
    never_vote_padding[PAD_ID] = NEG_INF
    decoder.projection.bias = never_vote_padding

    spec = specs.TransformerSpec(encoder, decoder)
    spec.config.layer_norm_epsilon = model.layer_norm_epsilon
    spec.config.unk_token = target_vocabulary[UNK_ID]
    spec.config.bos_token = target_vocabulary[START_ID]
    spec.config.eos_token = target_vocabulary[END_ID]
    spec.config.decoder_start_token = target_vocabulary[START_ID]
    spec.register_source_vocabulary(list(source_vocabulary))
    spec.register_target_vocabulary(list(target_vocabulary))
    return spec


def set_attention(spec, rehearsal, value, self_attention):
    """A `Rehearsal`'s four projections. CTranslate2's linear weights are
    (out, in); ours are `EinsumDense` kernels (d_model, heads, head_dim) and
    (heads, head_dim, d_model), heads major as CTranslate2 splits them.
    Self-attention: Q, K and V as one matrix; cross-attention: Q, then K and V."""

    import numpy as np

    def linear(dense):
        # (d_model, heads, head_dim) -> (heads * head_dim, d_model)
        kernel = value(dense.kernel)
        return kernel.reshape(kernel.shape[0], -1).T, value(dense.bias).reshape(-1)

    q, k, v = (
        linear(dense)
        for dense in (rehearsal.query_dense, rehearsal.key_dense, rehearsal.value_dense)
    )
    groups = [(q, k, v)] if self_attention else [(q,), (k, v)]
    for target, group in zip(spec.linear, groups):
        target.weight = np.concatenate([w for w, _ in group])
        target.bias = np.concatenate([b for _, b in group])
    out = value(rehearsal.output_dense.kernel)
    spec.linear[-1].weight = out.reshape(-1, out.shape[-1]).T
    spec.linear[-1].bias = value(rehearsal.output_dense.bias)


def set_feed_forward(spec, discussion, value):
    """`CrewDiscussion` / `AssessmentDiscussion`: two `Dense` and the LayerNorm
    of its `Adjust`."""
    spec.linear_0.weight = value(discussion.inner_dense.kernel).T
    spec.linear_0.bias = value(discussion.inner_dense.bias)
    spec.linear_1.weight = value(discussion.output_dense.kernel).T
    spec.linear_1.bias = value(discussion.output_dense.bias)
    set_layer_norm(spec.layer_norm, discussion.adjust.layer_norm, value)


def set_layer_norm(spec, layer_norm, value):
    spec.gamma = value(layer_norm.gamma)
    spec.beta = value(layer_norm.beta)


def convert(translator, output_dir):
    """Writes `translator`'s model as a CTranslate2 model (float32 weights;
    `compute_type="int8"` quantizes them when it loads). Returns the folder."""
    from ctranslate2.converters import Converter

    source = translator.source_tokenizer.get_vocabulary()
    target = translator.target_tokenizer.get_vocabulary()

    class SpecConverter(Converter):
        def _load(self):
            return transformer_spec(translator.backbone, source, target)

    return SpecConverter().convert(output_dir, quantization="float32", force=True)


# -- CTranslate2's text path ------------------------------------------------


class Ct2Pipeline:
    """Text -> pieces (SentencePiece, the run's models) -> `translate_batch`
    -> pieces -> text, as our tokenizers do it: sources cut to `max_length -
    1` pieces plus the end token; translations without padding, unknown,
    start or end tokens."""

    def __init__(self, translator):
        import sentencepiece

        self.translator = translator
        self.max_length = translator.backbone.max_length
        tokenizers = (translator.source_tokenizer, translator.target_tokenizer)
        self.source_sp, self.target_sp = (
            sentencepiece.SentencePieceProcessor(model_proto=t.proto) for t in tokenizers
        )
        self.source_pieces = translator.source_tokenizer.get_vocabulary()
        self.target_pieces = translator.target_tokenizer.get_vocabulary()
        self.target_ids = {piece: i for i, piece in enumerate(self.target_pieces)}
        self.end_piece = self.source_pieces[END_ID]
        # Lowercasing / accent stripping, when the run has them, are our
        # tokenizer's TF ops: the CTranslate2 path runs them too (timed).
        source_tokenizer = translator.source_tokenizer
        self.normalizes = source_tokenizer.lowercase or source_tokenizer.strip_accents

    def normalize(self, texts):
        if not self.normalizes:
            return list(texts)
        normalized = self.translator.source_tokenizer.normalize(list(texts))
        return [t.decode("utf-8") for t in normalized.numpy()]

    def encode(self, texts):
        """Texts (normalized) -> source pieces, ending with the end token."""
        pieces = self.source_sp.encode(list(texts), out_type=str)
        return [p[: self.max_length - 1] + [self.end_piece] for p in pieces]

    def source_ids(self, texts):
        return [
            [self.source_sp.piece_to_id(p) for p in row]
            for row in self.encode(self.normalize(texts))
        ]

    def pieces_of(self, ids):
        return [self.source_pieces[i] for i in ids]

    def ids_of(self, pieces):
        return [self.target_ids[p] for p in pieces]

    def decode(self, hypotheses):
        """Target pieces -> texts (the visible ids: above 3, before the end)."""
        texts = []
        for pieces in hypotheses:
            ids = []
            for i in self.ids_of(pieces):
                if i == END_ID:
                    break
                if i > END_ID:  # not pad, unk or start (`visible_ids`)
                    ids.append(i)
            texts.append(self.target_sp.decode(ids))
        return texts

    def limit(self, rows):
        """Ours: each row's source length + 50, capped at `max_length`;
        CTranslate2 has one limit a batch (the longest row's)."""
        from keras_stageshow.decoding.ceremony import EXTRA_TOKENS

        return min(max(len(r) for r in rows) + EXTRA_TOKENS, self.max_length)

    def greedy(self, ct2, rows):
        return ct2.translate_batch(
            rows, beam_size=1, min_decoding_length=0,
            max_decoding_length=self.limit(rows), max_input_length=0,
            return_end_token=True,
        )

    def beam(self, ct2, rows, num_beams, alpha):
        """Beam search, ranked by GNMT's penalty (see the module's docstring).
        Returns the best hypothesis of each row, with its end token."""
        results = ct2.translate_batch(
            rows, beam_size=num_beams, num_hypotheses=num_beams,
            length_penalty=1.0, min_decoding_length=0,
            max_decoding_length=self.limit(rows), max_input_length=0,
            return_end_token=True, return_scores=True,
        )
        best = []
        for result in results:
            # length_penalty=1 gave log P / len; GNMT's rank needs log P.
            ranked = max(
                zip(result.hypotheses, result.scores),
                key=lambda h: h[1] * len(h[0]) / ((5 + len(h[0])) / 6) ** alpha,
            )
            best.append(ranked[0])
        return best

    def runner(self, ct2, num_beams, alpha):
        def run(texts, strategy="greedy"):
            rows = self.encode(self.normalize(texts))
            if strategy == "beam":
                hypotheses = self.beam(ct2, rows, num_beams, alpha)
            else:
                hypotheses = [r.hypotheses[0] for r in self.greedy(ct2, rows)]
            return self.decode(hypotheses)

        return run


# -- checks -----------------------------------------------------------------


def ids_per_row(ids):
    """0-padded ids (batch, len) -> a list per row without the padding."""
    return [[int(i) for i in row if i != PAD_ID] for row in ids]


def ours_tokens(model, source_ids, **options):
    """Our voted ids a row, up to and with the end token (`generate`)."""
    import numpy as np

    longest = max(map(len, source_ids))
    padded = np.array(
        [r + [PAD_ID] * (longest - len(r)) for r in source_ids], "int32"
    )
    tokens = []
    for row in model.generate(padded, **options):
        row = [int(i) for i in row if i != PAD_ID]  # 0 after the end token
        tokens.append(row[: row.index(END_ID) + 1] if END_ID in row else row)
    return tokens


def identity(model, source_ids, pipeline, ct2, strategy, **options):
    """How many rows get the same tokens (up to and with the end token) from
    both engines, on the same source ids: ours by `generate` in batches of
    32, CTranslate2's one row a call, with the row's own limit as ours.
    Beam search (`num_beams`, `length_penalty`) is reported, not required:
    the engines stop a sentence by different rules."""
    ours = []
    for start in range(0, len(source_ids), BATCH):
        batch = source_ids[start : start + BATCH]
        ours += ours_tokens(model, batch, strategy=strategy, **options)
    counts = {}
    for name, translator in ct2.items():
        theirs = []
        for row in source_ids:
            rows = [pipeline.pieces_of(row)]
            if strategy == "beam":
                best = pipeline.beam(
                    translator, rows, options["num_beams"], options["length_penalty"]
                )[0]
            else:
                best = pipeline.greedy(translator, rows)[0].hypotheses[0]
            theirs.append(pipeline.ids_of(best))
        counts[name] = sum(a == b for a, b in zip(ours, theirs))
    return counts


# -- timing -----------------------------------------------------------------


def measure(runners, single, batched):
    """Latency (each of `single` alone, greedy) and `batched` in batches of
    32 (greedy, then beam), each engine in turn in a rotating order
    (`common.alternate`). Returns ({engine: seconds a sentence}, the batch
    translations {strategy: {engine: texts}}, {strategy: {engine: total
    seconds}})."""
    latency = turns(runners, [[s] for s in single], "greedy")[1]
    outputs, seconds = {}, {}
    chunks = [batched[i : i + BATCH] for i in range(0, len(batched), BATCH)]
    for strategy in ("greedy", "beam"):
        outputs[strategy], times = turns(runners, chunks, strategy)
        seconds[strategy] = {name: sum(t) for name, t in times.items()}
    return latency, outputs, seconds


def turns(runners, calls, strategy):
    """Each engine translates each of `calls` once, one call a round, in a
    rotating order. Returns ({engine: the translations}, {engine: seconds
    a call})."""
    outputs = {name: [] for name in runners}
    cursor = dict.fromkeys(runners, 0)

    def turn(name):
        def run():
            texts = calls[cursor[name]]
            cursor[name] += 1
            start = time.perf_counter()
            outputs[name].extend(runners[name](texts, strategy))
            return time.perf_counter() - start

        return run

    seconds = common.alternate({name: turn(name) for name in runners}, len(calls))
    return outputs, seconds


def bleu(outputs, references):
    """{strategy: {engine: sacreBLEU and lowercased BLEU}} of the batch
    translations, and the two sacreBLEU signatures."""
    from keras_stageshow.evaluation import bleu_scores

    table, signature = {}, None
    for strategy, by_engine in outputs.items():
        table[strategy] = {}
        for name, hypotheses in by_engine.items():
            result = bleu_scores(hypotheses, references)
            table[strategy][name] = common.bleu_fields(result)
            signature = {
                "cased": result["sacrebleu_signature"],
                "lowercased": result["lowercased_signature"],
            }
    return table, signature


def same(a, b):
    return sum(x == y for x, y in zip(a, b))


if __name__ == "__main__":
    main()
