"""`Translator`: a `Transformer` with its tokenizers, texts in and out; the
decoding is the awards ceremony's (`keras_stageshow/decoding/`)."""

import os

from keras_stageshow.decoding.ceremony import ceremony_for
from keras_stageshow.decoding.ceremony import check_jit_compile
from keras_stageshow.decoding.ceremony import check_max_new_tokens
from keras_stageshow.decoding.ceremony import check_options
from keras_stageshow.decoding.ceremony import encode_sources
from keras_stageshow.files import save_model_atomically
from keras_stageshow.files import write_folder_atomically
from keras_stageshow.files import write_json_atomically
from keras_stageshow.layers.utils import is_int
from keras_stageshow.utf8 import decode_utf8


class Translator:
    """The awards ceremony for text: a `Transformer` with its tokenizers.

    Maps a list of strings to a list of translations: tokenize (the
    source's end token appended, cut to the model's `max_length`), decode
    in length-sorted batches (so a batch's rows are about as long as each
    other), detokenize, and return the results in the input's order. Empty
    or blank strings translate to `""` without running the model. All of it
    is `AwardsCeremony.translate`, the code the SavedModel export runs too.

    Args:
        model: a trained `Transformer`.
        source_tokenizer, target_tokenizer: `SubwordTokenizer`s whose
            vocabulary sizes match the model's.

    Example:
    >>> translator = Translator.load("runs/multi30k")   # a RUN_DIR
    >>> translator.translate(["Ein Hund läuft über die Wiese."])
    ['A dog runs across the meadow.']
    >>> translator.translate(texts, strategy="beam", num_beams=4)
    >>> translator.save_to_preset("multi30k_de_en")      # keras-hub preset
    >>> keras_hub.upload_preset("hf://me/multi30k_de_en", "multi30k_de_en")
    >>> Translator.from_preset("hf://me/multi30k_de_en")
    """

    def __init__(self, model, source_tokenizer, target_tokenizer):
        for name, tokenizer, size in (
            ("source_tokenizer", source_tokenizer, model.input_vocab_size),
            ("target_tokenizer", target_tokenizer, model.target_vocab_size),
        ):
            if tokenizer.vocabulary_size() != size:
                raise ValueError(
                    f"`{name}` has {tokenizer.vocabulary_size()} tokens but the "
                    f"model expects {size}. Pass the tokenizers the model was "
                    "trained with."
                )
        self.model = model
        self.source_tokenizer = source_tokenizer
        self.target_tokenizer = target_tokenizer

    def translate(
        self, texts, strategy="greedy", batch_size=32, return_scores=False,
        max_new_tokens=None, seed=None, jit_compile="auto", **options,
    ):
        """Translates a list of strings.

        Args:
            texts: a list of strings (a single string is also accepted and
                gives a single translation). `bytes` are accepted as well,
                decoded as UTF-8; invalid bytes become U+FFFD (in `str`s
                too), so one bad string never fails the others.
            strategy: `"greedy"`, `"beam"` or `"sample"`; `**options` are
                that strategy's (`num_beams`, `length_penalty`, `top_k`,
                `top_p`, `temperature`), as in `Transformer.generate`.
            batch_size: int, sentences decoded together.
            return_scores: bool, also return each translation's score.
            max_new_tokens, seed, jit_compile: as in `Transformer.generate`.
        """
        single = isinstance(texts, (str, bytes))
        texts = _check_texts([texts] if single else texts)
        if not is_int(batch_size) or batch_size < 1:
            raise ValueError(f"`batch_size` must be an int >= 1; received {batch_size!r}.")
        model = self.model
        options = check_options(
            strategy, vocabulary_size=model.target_vocab_size, **options
        )
        max_new_tokens = check_max_new_tokens(max_new_tokens, model.max_length)
        ceremony = ceremony_for(model, check_jit_compile(jit_compile))
        translations, scores = ceremony.translate(
            texts, self.source_tokenizer, self.target_tokenizer, options,
            batch_size=int(batch_size), max_new_tokens=max_new_tokens, seed=seed,
        )
        translations = [t.decode("utf-8") for t in translations.numpy()]
        scores = scores.numpy()
        if single:
            return (translations[0], float(scores[0])) if return_scores else translations[0]
        return (translations, scores) if return_scores else translations

    __call__ = translate

    def encode(self, texts):
        """Source strings -> 0-padded int32 ids `(batch, longest)`, each
        row ending with the end token and cut to the model's
        `max_length`."""
        ids, _ = encode_sources(self.source_tokenizer, list(texts), self.model.max_length)
        return ids.numpy().astype("int32")

    def save(self, directory):
        """Writes `model.keras` and the two tokenizer folders (the layout of
        a RUN_DIR), each file atomically."""
        os.makedirs(directory, exist_ok=True)
        self._build_model()
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
        the signatures and `options` (`version`, `num_beams`, `jit_compile`,
        `length_penalty`, `max_new_tokens`, `batch_size`)."""
        from keras_stageshow.serving import export_for_serving

        return export_for_serving(self, export_dir, **options)

    def save_to_preset(self, preset_dir):
        """Writes the translator as a keras-hub preset, atomically.

        The layout is keras-hub's: the `Transformer` (a keras-hub
        `Backbone`) as `config.json`, `model.weights.h5` and
        `metadata.json`; each tokenizer as `source_tokenizer.json` /
        `target_tokenizer.json` with its SentencePiece model in
        `assets/source_tokenizer/` / `assets/target_tokenizer/`. Share it
        with `keras_hub.upload_preset("kaggle://...", preset_dir)` or
        `"hf://..."`; load it with `Translator.from_preset`.
        """
        from keras_stageshow.tokenizers import SubwordTokenizer

        self._build_model()

        def write(folder):
            self.model.save_to_preset(folder)
            for tokenizer, config_file in (
                (self.source_tokenizer, PRESET_SOURCE_TOKENIZER),
                (self.target_tokenizer, PRESET_TARGET_TOKENIZER),
            ):
                SubwordTokenizer(
                    tokenizer.proto,
                    lowercase=tokenizer.lowercase,
                    strip_accents=tokenizer.strip_accents,
                    config_file=config_file,
                ).save_to_preset(folder)

        write_folder_atomically(preset_dir, write)

    def _build_model(self):
        if not self.model.built:  # never called: make its weights to save
            self.model.build(((None, None), (None, None)))

    @classmethod
    def from_preset(cls, preset):
        """Loads what `save_to_preset` wrote: a local folder, or a handle
        keras-hub can fetch (`"kaggle://user/model/keras/variant"`,
        `"hf://user/model"`). A RUN_DIR is accepted too."""
        from keras_stageshow.models.transformer import Transformer
        from keras_stageshow.tokenizers import SubwordTokenizer

        if not isinstance(preset, (str, os.PathLike)):
            raise TypeError(
                "`preset` must be a folder or a keras-hub handle (a string); "
                f"received {type(preset).__name__}."
            )
        preset = os.fspath(preset)
        if "://" not in preset:
            if not os.path.isdir(preset):
                raise FileNotFoundError(
                    f"Preset folder {preset!r} does not exist. Pass the folder "
                    "`Translator.save_to_preset` wrote, or a handle such as "
                    "'hf://user/model'."
                )
            if _is_run_dir(preset):
                return cls.load(preset)
            for name in ("config.json", PRESET_SOURCE_TOKENIZER, PRESET_TARGET_TOKENIZER):
                if not os.path.isfile(os.path.join(preset, name)):
                    raise FileNotFoundError(
                        f"Preset folder {preset!r} has no {name}: it is not a "
                        "translator preset. Write one with "
                        "`Translator.save_to_preset`."
                    )
        model = Transformer.from_preset(preset)
        return cls(
            model,
            SubwordTokenizer.from_preset(preset, config_file=PRESET_SOURCE_TOKENIZER),
            SubwordTokenizer.from_preset(preset, config_file=PRESET_TARGET_TOKENIZER),
        )

    @classmethod
    def load(cls, directory):
        """Loads a RUN_DIR (what `stageshow train` or `save` wrote), with
        `safe_mode=True`: no code from the folder is run. A keras-hub preset
        folder (`save_to_preset`) is accepted too."""
        from keras_stageshow.tokenizers import SubwordTokenizer
        from keras_stageshow.training.run import read_run

        if os.path.isdir(directory) and not _is_run_dir(directory) and (
            os.path.isfile(os.path.join(directory, PRESET_SOURCE_TOKENIZER))
        ):
            return cls.from_preset(directory)
        read_run(directory)  # a clear error if it is not a run
        model = load_model(os.path.join(directory, "model.keras"))
        return cls(
            model,
            SubwordTokenizer.load(os.path.join(directory, "source_tokenizer")),
            SubwordTokenizer.load(os.path.join(directory, "target_tokenizer")),
        )


# The tokenizers' file names in a preset (keras-hub's `config_file`).
PRESET_SOURCE_TOKENIZER = "source_tokenizer.json"
PRESET_TARGET_TOKENIZER = "target_tokenizer.json"


def _is_run_dir(directory):
    return os.path.isfile(os.path.join(directory, "run.json"))


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
    """`texts` as a list of valid `str`s (`bytes` decoded as UTF-8, invalid
    bytes replaced by U+FFFD)."""
    if not isinstance(texts, (list, tuple)):
        raise TypeError(
            "`texts` must be a list of strings; received "
            f"{type(texts).__name__}."
        )
    for i, text in enumerate(texts):
        if not isinstance(text, (str, bytes)):
            raise TypeError(
                f"`texts[{i}]` must be a string (str or UTF-8 bytes); received "
                f"{type(text).__name__}."
            )
    return [decode_utf8(text) for text in texts]
