"""Scoring translations: BLEU, the way translation results are reported,
and `evaluate_translator`, what `stageshow evaluate` prints (the scores,
the decoding time, the translations written to a file)."""

import time

from keras_stageshow.files import write_text_atomically
from keras_stageshow.generation_options import DEFAULTS


def timed_translate(translator, texts, **options):
    """`(translations, seconds)`: `translator.translate(texts, **options)`
    and the wall-clock seconds it took."""
    start = time.time()
    translations = translator.translate(texts, **options)
    return translations, time.time() - start


def evaluate_translator(
    translator, sources, references, data="", output=None, **options
):
    """Translates `sources` and scores the translations against
    `references` (one each).

    Args:
        translator: a `Translator`.
        sources, references: aligned lists of strings.
        data: str, what the sentences are (recorded in the result).
        output: a file path: the translations are also written there, one
            a line (atomically).
        **options: `Translator.translate`'s (`strategy`, `num_beams`,
            `batch_size`, ...).

    Returns `bleu_scores`' dict with `data`, `strategy` and
    `translate_seconds` (the decoding time) added.

    Example:
    >>> evaluate_translator(translator, de, en, strategy="beam", num_beams=4)
    """
    hypotheses, seconds = timed_translate(translator, sources, **options)
    if output:
        write_text_atomically(output, "\n".join(hypotheses) + "\n")
    scores = bleu_scores(hypotheses, references)
    scores.update(
        data=data,
        strategy=options.get("strategy", DEFAULTS.strategy),
        translate_seconds=round(seconds, 1),
    )
    return scores


def bleu_scores(hypotheses, references):
    """Corpus BLEU of `hypotheses` against one reference each.

    Returns a dict:
        `sacrebleu`: sacreBLEU's default (cased, 13a tokenization), the
            score to compare across papers that publish their signature;
        `bleu_lowercased_tokenized`: lowercased, 13a-tokenized BLEU: what
            published Multi30k results report (multi-bleu.perl -lc on
            tokenized text);
        the two sacreBLEU signatures, and the sentence count.
    """
    import sacrebleu

    hypotheses, references = list(hypotheses), list(references)
    if len(hypotheses) != len(references):
        raise ValueError(
            f"{len(hypotheses)} hypotheses but {len(references)} references; "
            "they must be aligned one to one."
        )
    if not hypotheses:
        raise ValueError("No sentences to score: `hypotheses` is empty.")
    cased = sacrebleu.metrics.BLEU()
    lowercased = sacrebleu.metrics.BLEU(lowercase=True, tokenize="13a")
    cased_score = cased.corpus_score(hypotheses, [references])
    lower_score = lowercased.corpus_score(hypotheses, [references])
    return {
        "sacrebleu": round(cased_score.score, 2),
        "bleu_lowercased_tokenized": round(lower_score.score, 2),
        "sacrebleu_signature": str(cased.get_signature()),
        "lowercased_signature": str(lowercased.get_signature()),
        "sentences": len(hypotheses),
    }
