"""BLEU, the way translation results are reported."""


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
