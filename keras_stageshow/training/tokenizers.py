"""A run's two tokenizers: trained on its training pairs from the
tokenizer settings (`recipe.TOKENIZER_SETTINGS`), kept in the RUN_DIR."""

import os

from keras_stageshow.run_dir import SOURCE_TOKENIZER_DIR
from keras_stageshow.run_dir import TARGET_TOKENIZER_DIR
from keras_stageshow.tokenizers import SubwordTokenizer


def train_tokenizers(train_pairs, settings):
    """`(source_tokenizer, target_tokenizer)` trained on `train_pairs`
    (`(source_texts, target_texts)`); one tokenizer, both ways, when
    `settings["shared_vocabulary"]`."""
    options = dict(
        vocabulary_size=settings["vocabulary_size"],
        lowercase=settings["lowercase"],
        strip_accents=settings["strip_accents"],
    )
    source_texts, target_texts = train_pairs
    if settings["shared_vocabulary"]:
        shared = SubwordTokenizer.train([source_texts, target_texts], **options)
        return shared, shared
    return (
        SubwordTokenizer.train(source_texts, **options),
        SubwordTokenizer.train(target_texts, **options),
    )


def save_tokenizers(out, tokenizers):
    """Writes `(source_tokenizer, target_tokenizer)` into the RUN_DIR `out`."""
    for tokenizer, folder in zip(tokenizers, (SOURCE_TOKENIZER_DIR, TARGET_TOKENIZER_DIR)):
        tokenizer.save(os.path.join(out, folder))


def load_tokenizers(out):
    """`(source_tokenizer, target_tokenizer)` of the RUN_DIR `out`."""
    return tuple(
        SubwordTokenizer.load(os.path.join(out, folder))
        for folder in (SOURCE_TOKENIZER_DIR, TARGET_TOKENIZER_DIR)
    )
