import os

import numpy as np

from keras_stageshow.files import save_model_atomically
from keras_stageshow.files import write_json_atomically


class Translator:
    """The awards ceremony for text: a `Transformer` with its tokenizers.

    Maps a list of strings to a list of translations: tokenize (the
    source's end token appended, cut to the model's `max_length`), decode
    with `Transformer.generate` in length-sorted batches (so a batch's rows
    are about as long as each other), detokenize, and return the results in
    the input's order. Empty or blank strings translate to `""` without
    running the model.

    Args:
        model: a trained `Transformer`.
        source_tokenizer, target_tokenizer: `SubwordTokenizer`s whose
            vocabulary sizes match the model's.

    Example:
    >>> translator = Translator.load("runs/multi30k")   # a RUN_DIR
    >>> translator.translate(["Ein Hund läuft über die Wiese."])
    ['A dog runs across the meadow.']
    >>> translator.translate(texts, strategy="beam", num_beams=4)
    """

    def __init__(self, model, source_tokenizer, target_tokenizer):
        for name, tokenizer, size in (
            ("source_tokenizer", source_tokenizer, model.input_vocab_size),
            ("target_tokenizer", target_tokenizer, model.target_vocab_size),
        ):
            if tokenizer.vocabulary_size != size:
                raise ValueError(
                    f"`{name}` has {tokenizer.vocabulary_size} tokens but the "
                    f"model expects {size}. Pass the tokenizers the model was "
                    "trained with."
                )
        self.model = model
        self.source_tokenizer = source_tokenizer
        self.target_tokenizer = target_tokenizer

    def translate(
        self, texts, strategy="greedy", batch_size=32, return_scores=False, **options
    ):
        """Translates a list of strings.

        Args:
            texts: a list of strings (a single string is also accepted and
                gives a single translation).
            strategy: `"greedy"`, `"beam"` or `"sample"`; see
                `Transformer.generate`, which also takes `**options`
                (`num_beams`, `length_penalty`, `top_k`, `top_p`,
                `temperature`, `seed`, `max_new_tokens`).
            batch_size: int, sentences decoded together.
            return_scores: bool, also return each translation's score.
        """
        single = isinstance(texts, str)
        texts = [texts] if single else texts
        texts = _check_texts(texts)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"`batch_size` must be an int >= 1; received {batch_size!r}.")
        translations = [""] * len(texts)
        scores = np.zeros((len(texts),), "float32")
        todo = [i for i, t in enumerate(texts) if t.strip()]
        if todo:
            source = self.encode([texts[i] for i in todo])
            lengths = (source != 0).sum(axis=1)
            order = np.argsort(-lengths, kind="stable")
            for start in range(0, len(order), batch_size):
                chosen = order[start : start + batch_size]
                width = int(lengths[chosen].max())
                tokens, batch_scores = self.model.generate(
                    source[chosen, :width],
                    strategy=strategy,
                    start_id=self.target_tokenizer.start_id,
                    end_id=self.target_tokenizer.end_id,
                    return_scores=True,
                    **options,
                )
                words = self.target_tokenizer.detokenize_to_strings(tokens)
                for row, text, score in zip(chosen, words, batch_scores):
                    translations[todo[row]] = text
                    scores[todo[row]] = score
        if single:
            return (translations[0], float(scores[0])) if return_scores else translations[0]
        return (translations, scores) if return_scores else translations

    __call__ = translate

    def encode(self, texts):
        """Source strings -> 0-padded int32 ids `(batch, longest)`, each
        row ending with the end token and cut to the model's
        `max_length`."""
        import tensorflow as tf

        tokenizer = self.source_tokenizer
        ids = tokenizer.tokenize(list(texts))[:, : self.model.max_length - 1]
        ids = tf.concat([ids, tf.fill([ids.nrows(), 1], tokenizer.end_id)], axis=1)
        return ids.to_tensor().numpy().astype("int32")

    def save(self, directory):
        """Writes `model.keras` and the two tokenizer folders (the layout of
        a RUN_DIR), each file atomically."""
        os.makedirs(directory, exist_ok=True)
        save_model_atomically(self.model, os.path.join(directory, "model.keras"))
        self.source_tokenizer.save(os.path.join(directory, "source_tokenizer"))
        self.target_tokenizer.save(os.path.join(directory, "target_tokenizer"))
        if not os.path.exists(os.path.join(directory, "run.json")):
            write_json_atomically(
                os.path.join(directory, "run.json"),
                {"status": "complete", "settings": {}, "saved_by": "Translator.save"},
            )

    def export(self, export_dir, **options):
        """Writes a SavedModel for TF Serving into `export_dir/<version>/`
        and returns its path; see `keras_stageshow.export_for_serving` for
        the signatures and `options` (`version`, `num_beams`,
        `length_penalty`, `max_new_tokens`, `batch_size`)."""
        from keras_stageshow.serving import export_for_serving

        return export_for_serving(self, export_dir, **options)

    @classmethod
    def load(cls, directory):
        """Loads a RUN_DIR (what `stageshow train` or `save` wrote), with
        `safe_mode=True`: no code from the folder is run."""
        from keras_stageshow.tokenizers import SubwordTokenizer
        from keras_stageshow.training.run import read_run

        read_run(directory)  # a clear error if it is not a run
        model = load_model(os.path.join(directory, "model.keras"))
        return cls(
            model,
            SubwordTokenizer.load(os.path.join(directory, "source_tokenizer")),
            SubwordTokenizer.load(os.path.join(directory, "target_tokenizer")),
        )


def load_model(path):
    """`keras.saving.load_model(path, safe_mode=True)` with clear errors for
    a missing or damaged file."""
    import zipfile

    import keras

    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"Model file {path!r} does not exist. A run has one once its "
            "first epoch is done; pass a RUN_DIR or a .keras file."
        )
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"Model file {path!r} is not a .keras archive (it is damaged or "
            "truncated). Retrain, or restore it from a copy."
        )
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except Exception as error:
        raise ValueError(
            f"Model file {path!r} could not be loaded: {type(error).__name__}: "
            f"{error}. The file may be damaged, or come from another version "
            "of keras_stageshow."
        ) from error


def _check_texts(texts):
    if not isinstance(texts, (list, tuple)):
        raise TypeError(
            "`texts` must be a list of strings; received "
            f"{type(texts).__name__}."
        )
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(
                f"`texts[{i}]` must be a string; received {type(text).__name__}."
            )
    return list(texts)
