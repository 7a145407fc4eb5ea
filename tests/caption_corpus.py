"""The tests' parallel corpus: English image captions with German
translations, generated from a small grammar and written in Multi30k's raw
layout (`{split}.{de,en}.gz`), so that `load_multi30k`, `stageshow train
--data-dir` and the notebooks read it as they read the real files.

The suite runs on a fresh machine with only pip's packages, where
../shared/data/multi30k (which the package must not ship) is absent; the
tests that are about the real files use the `multi30k_dir` fixture
(tests/conftest.py) and skip there. The sentences are cased, punctuated and
accented (ä, ö, ü, ß, é) like Multi30k's, with a few odd spaces (a double
space, a no-break space) that SentencePiece's normalization changes.
"""

import gzip
import os

import numpy as np

# Sentences per split: enough for the tests' runs (at most 1,500 training
# pairs, 100 validation pairs), small enough to write in milliseconds.
SPLIT_SIZES = {"train": 3000, "val": 500, "test_2016_flickr": 500}

# (English, German, German gender: m / f / n, or pl for a plural subject)
SUBJECTS = [
    ("A man", "Ein Mann", "m"),
    ("A woman", "Eine Frau", "f"),
    ("A girl", "Ein Mädchen", "n"),
    ("A boy", "Ein Junge", "m"),
    ("A child", "Ein Kind", "n"),
    ("An older man", "Ein älterer Mann", "m"),
    ("A young woman", "Eine junge Frau", "f"),
    ("A brown dog", "Ein brauner Hund", "m"),
    ("A street musician", "Ein Straßenmusiker", "m"),
    ("Two dogs", "Zwei Hunde", "pl"),
    ("Three children", "Drei Kinder", "pl"),
    ("Two men", "Zwei Männer", "pl"),
    ("Four friends", "Vier Freunde", "pl"),
]
# (English, German adjective stem): dative after "einem" / "einer" / none,
# every German form here ends in -en.
COLORS = [
    ("red", "rot"), ("blue", "blau"), ("green", "grün"), ("white", "weiß"),
    ("black", "schwarz"), ("yellow", "gelb"), ("gray", "grau"),
]
# (English, German singular, gender, German dative plural)
CLOTHES = [
    ("shirt", "Hemd", "n", "Hemden"),
    ("jacket", "Jacke", "f", "Jacken"),
    ("hat", "Hut", "m", "Hüten"),
    ("dress", "Kleid", "n", "Kleidern"),
    ("coat", "Mantel", "m", "Mänteln"),
]
# (English singular, English plural, German singular, German plural)
VERBS = [
    ("is running", "are running", "läuft", "laufen"),
    ("is playing", "are playing", "spielt", "spielen"),
    ("is sitting", "are sitting", "sitzt", "sitzen"),
    ("is standing", "are standing", "steht", "stehen"),
    ("is jumping", "are jumping", "springt", "springen"),
    ("is walking", "are walking", "geht", "gehen"),
    ("is waiting", "are waiting", "wartet", "warten"),
    ("is dancing", "are dancing", "tanzt", "tanzen"),
]
PLACES = [
    ("on the beach", "am Strand"),
    ("in the snow", "im Schnee"),
    ("on a busy street", "auf einer belebten Straße"),
    ("in front of a white building", "vor einem weißen Gebäude"),
    ("in the park", "im Park"),
    ("near the water", "in der Nähe des Wassers"),
    ("on a bridge", "auf einer Brücke"),
    ("in a small café", "in einem kleinen Café"),
    ("at the market", "auf dem Markt"),
    ("under a large tree", "unter einem großen Baum"),
]
CLAUSES = [
    (", while a dog watches", ", während ein Hund zuschaut"),
    (", while people walk by", ", während Leute vorbeigehen"),
    (" with a smile", " mit einem Lächeln"),
]


def caption_pair(rng):
    """One (English, German) caption from the generator `rng`."""
    en, de, gender = SUBJECTS[rng.integers(len(SUBJECTS))]
    plural = gender == "pl"
    if rng.random() < 0.5:
        color_en, color_de = COLORS[rng.integers(len(COLORS))]
        item_en, item_de, item_gender, item_plural = CLOTHES[rng.integers(len(CLOTHES))]
        if plural:
            en += f" in {color_en} {item_en}s"
            de += f" in {color_de}en {item_plural}"
        else:
            article = "einer" if item_gender == "f" else "einem"
            en += f" in a {color_en} {item_en}"
            de += f" in {article} {color_de}en {item_de}"
    verb = VERBS[rng.integers(len(VERBS))]
    place_en, place_de = PLACES[rng.integers(len(PLACES))]
    en += f" {verb[1 if plural else 0]} {place_en}"
    de += f" {verb[3 if plural else 2]} {place_de}"
    if rng.random() < 0.25:
        clause_en, clause_de = CLAUSES[rng.integers(len(CLAUSES))]
        en, de = en + clause_en, de + clause_de
    if rng.random() < 0.9:  # a few captions, as in Multi30k, lack the period
        en, de = en + ".", de + "."
    odd = rng.random()
    if odd < 0.02:  # a double space (SentencePiece collapses it)
        en, de = en.replace(" ", "  ", 1), de.replace(" ", "  ", 1)
    elif odd < 0.04:  # a no-break space (NFKC makes it a space)
        en, de = en.replace(" ", "\u00a0", 1), de.replace(" ", "\u00a0", 1)
    return en, de


def write_caption_corpus(folder, seed=0):
    """Writes `{split}.en.gz` and `{split}.de.gz` for each split of
    `SPLIT_SIZES` into `folder`; returns `folder`. The same seed writes the
    same files."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    for split, size in SPLIT_SIZES.items():
        pairs = [caption_pair(rng) for _ in range(size)]
        for lang, column in (("en", 0), ("de", 1)):
            path = os.path.join(folder, f"{split}.{lang}.gz")
            with gzip.open(path, "wt", encoding="utf-8") as f:
                f.writelines(pair[column] + "\n" for pair in pairs)
    return str(folder)
