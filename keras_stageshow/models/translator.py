"""`Translator`: the translation task, a keras-hub `Seq2SeqLM` (backbone:
the `Transformer`; preprocessor: `TranslatorPreprocessor`; samplers:
`decoding/samplers.py`); the decoding is the awards ceremony's
(`keras_stageshow/decoding/`)."""

import os

import keras
import keras_hub

from keras_stageshow import run_dir
from keras_stageshow.decoding import samplers
from keras_stageshow.decoding.ceremony import ceremony_for
from keras_stageshow.decoding.ceremony import check_jit_compile
from keras_stageshow.decoding.ceremony import check_max_new_tokens
from keras_stageshow.decoding.generate_ids import generate
from keras_stageshow.files import write_folder_atomically
from keras_stageshow.generation_options import DEFAULTS
from keras_stageshow.layers.utils import is_int
from keras_stageshow.models import translator_files
from keras_stageshow.models.transformer import Transformer
from keras_stageshow.models.translator_preprocessor import TranslatorPreprocessor
from keras_stageshow.serving import export_for_serving
from keras_stageshow.special_ids import END_ID
from keras_stageshow.training.paper_recipe import LABEL_SMOOTHING
from keras_stageshow.training.paper_recipe import LEARNING_RATE_SCALE
from keras_stageshow.training.paper_recipe import WARMUP_STEPS
from keras_stageshow.training.paper_recipe import paper_compile_arguments
from keras_stageshow.utf8 import decode_utf8


@keras.saving.register_keras_serializable(package="keras_stageshow")
class Translator(keras_hub.models.Seq2SeqLM):
    """The awards ceremony for text: the translation task (sequence to
    sequence language modelling).

    A keras-hub `Seq2SeqLM`, as keras-hub's BART is: `backbone` is the
    `Transformer` (the stage show, the Oscar assessment and the vote),
    `preprocessor` a `TranslatorPreprocessor` (the two tokenizers,
    truncation and the end token), and `compile(sampler=...)` picks how the
    ceremony announces each translation. `generate` is preprocess -> the
    ceremony's decoding loop (`AwardsCeremony`, traced once per shape
    bucket: `make_generate_function`) -> detokenize; the SavedModel export
    runs the same code. Sentences are decoded in length-sorted batches and
    returned in the input's order; empty or blank strings translate to `""`
    without running the model.

    Args:
        backbone: a `Transformer`.
        preprocessor: a `TranslatorPreprocessor` whose vocabularies match
            the backbone's. `Translator(backbone, source_tokenizer,
            target_tokenizer)`, the form of earlier versions, builds it.
        **kwargs: `keras.Model` arguments (`name`, ...); `compile=False`
            skips the default `compile()`.

    Example:
    >>> translator = Translator.load("runs/multi30k")   # a RUN_DIR
    >>> translator.generate(["Ein Hund läuft über die Wiese."])
    ['A dog runs across the meadow.']
    >>> translator.compile(sampler=BeamSampler(num_beams=4, length_penalty=0.6))
    >>> translator.generate(texts)                        # beam search now
    >>> translator.fit(tf.data.Dataset.from_tensor_slices((de, en)).batch(64))
    >>> translator.save_to_preset("multi30k_de_en")      # keras-hub preset
    >>> keras_hub.models.Seq2SeqLM.from_preset("multi30k_de_en")

    References:
        - [Vaswani et al., 2017](https://arxiv.org/abs/1706.03762)
    """

    backbone_cls = Transformer
    preprocessor_cls = TranslatorPreprocessor

    def __init__(self, backbone, preprocessor=None, target_tokenizer=None, **kwargs):
        if not isinstance(backbone, Transformer):
            raise TypeError(
                "`backbone` must be a keras_stageshow `Transformer`; received "
                f"{type(backbone).__name__}."
            )
        if target_tokenizer is not None:  # (backbone, source, target)
            preprocessor = TranslatorPreprocessor(
                preprocessor, target_tokenizer, max_length=backbone.max_length
            )
        if not isinstance(preprocessor, TranslatorPreprocessor):
            raise TypeError(
                "`preprocessor` must be a `TranslatorPreprocessor` (or pass "
                "`Translator(backbone, source_tokenizer, target_tokenizer)`); "
                f"received {type(preprocessor).__name__}."
            )
        for name, size in (
            ("source_tokenizer", backbone.input_vocab_size),
            ("target_tokenizer", backbone.target_vocab_size),
        ):
            tokenizer = getattr(preprocessor, name)
            if tokenizer.proto is not None and tokenizer.vocabulary_size() != size:
                raise ValueError(
                    f"`{name}` has {tokenizer.vocabulary_size()} tokens but the "
                    f"model expects {size}. Pass the tokenizers the model was "
                    "trained with."
                )
        self.backbone = backbone
        self.preprocessor = preprocessor
        self.generate_function = None
        super().__init__(**kwargs)
        self.built = True  # as keras-hub's `Task.build`; Keras's `quantize` checks it

    # The network's forward pass: token ids in, logits out.
    def call(self, inputs, training=None):
        return self.backbone(inputs, training=training)

    @property
    def model(self):
        """The backbone (`Transformer`), under its earlier name."""
        return self.backbone

    @property
    def source_tokenizer(self):
        return self.preprocessor.source_tokenizer

    @property
    def target_tokenizer(self):
        return self.preprocessor.target_tokenizer

    # -- training -------------------------------------------------------------

    def compile(
        self,
        optimizer="auto",
        loss="auto",
        *,
        metrics="auto",
        sampler=DEFAULTS.strategy,
        label_smoothing=LABEL_SMOOTHING,
        warmup_steps=WARMUP_STEPS,
        learning_rate_scale=LEARNING_RATE_SCALE, cooldown_steps=None,
        **kwargs,
    ):
        """The paper's recipe (as `Transformer.compile`) and the sampler
        `generate` uses.

        Args:
            optimizer, loss, metrics: `"auto"` is the paper's (Adam on the
                warm-up schedule, label-smoothed masked cross-entropy,
                masked token accuracy); anything else replaces it.
            sampler: `"greedy"`, `"beam"`, `"sample"` (or keras-hub's
                `"top_k"` / `"top_p"`), or a `GreedySampler`,
                `BeamSampler(num_beams, length_penalty)` or
                `RandomSampler(top_k, top_p, temperature, seed)`.
            label_smoothing, warmup_steps, learning_rate_scale,
                cooldown_steps: tune the paper's recipe (`Transformer.compile`).
            **kwargs: `keras.Model.compile` arguments.
        """
        arguments = paper_compile_arguments(
            self.backbone.d_model,
            None if optimizer == "auto" else optimizer,
            None if loss == "auto" else loss,
            None if metrics == "auto" else metrics,
            label_smoothing, warmup_steps, learning_rate_scale, cooldown_steps,
        )
        sampler = samplers.get(sampler).check(self.backbone.target_vocab_size)
        kwargs.setdefault("weighted_metrics", None)
        super().compile(
            optimizer=arguments["optimizer"],
            loss=arguments["loss"],
            metrics=arguments["metrics"],
            sampler=sampler,
            **kwargs,
        )

    def compile_from_config(self, config):
        # A loaded `.keras` file compiles as it was saved (Keras skips
        # models whose `compile` is overridden), so training resumes with
        # its optimizer state.
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def quantize(self, mode=None, config=None, filters=None, **kwargs):
        """The backbone's `Transformer.quantize`, then the traced functions cleared."""
        self.backbone.quantize(mode, config=config, filters=filters, **kwargs)
        self.generate_function = self.train_function = self.test_function = None
        self.predict_function = None

    # -- the awards ceremony --------------------------------------------------

    def make_generate_function(self):
        """The decoding core for this translator: its `AwardsCeremony`, which traces
        one loop per shape bucket and sampler (with XLA when the model is compiled
        with it). Cleared by `compile` and `quantize`."""
        if self.generate_function is None:
            self.generate_function = ceremony_for(
                self.backbone, check_jit_compile(_jit_compile_of(self))
            )
        return self.generate_function

    def generate(
        self,
        inputs,
        max_length=None,
        stop_token_ids="auto",
        strip_prompt=False,
        *,
        batch_size=DEFAULTS.batch_size,
        return_scores=False,
    ):
        """Translates `inputs` with the compiled sampler.

        Args:
            inputs: a string, a list of strings (or UTF-8 `bytes`: invalid
                bytes become U+FFFD), or a `tf.data.Dataset` of strings;
                also token ids (`{"source_ids": ...}` or an int array),
                which give voted ids back, as `Transformer.generate`.
            max_length: int, tokens each translation may have at most
                (keras-hub's name). By default each sentence may have its
                own source length + 50 (the paper), capped at the model's
                `max_length`.
            stop_token_ids: `"auto"` (the end token) is the only choice:
                the ceremony stops a row at its end token or its limit.
            strip_prompt: ignored (a translation never contains its source).
            batch_size: int, sentences decoded together.
            return_scores: bool, also return each translation's score.
        """
        if stop_token_ids != "auto" and list(stop_token_ids or ()) != [END_ID]:
            raise ValueError(
                '`stop_token_ids` must be "auto": the ceremony stops each row '
                f"at the end token; received {stop_token_ids!r}."
            )
        return self._announce(
            inputs, self.sampler, batch_size, max_length, return_scores,
            self.make_generate_function(),
        )

    def translate(
        self, texts, strategy=DEFAULTS.strategy, batch_size=DEFAULTS.batch_size,
        return_scores=False, max_new_tokens=DEFAULTS.max_new_tokens,
        seed=DEFAULTS.seed, jit_compile="auto", **options,
    ):
        """`generate` with the strategy given by name for this call only.

        Args:
            texts: a list of strings (a single string gives a single
                translation).
            strategy: `"greedy"`, `"beam"` or `"sample"`; `**options` are
                that strategy's (`num_beams`, `length_penalty`, `top_k`,
                `top_p`, `temperature`), as in `Transformer.generate`.
            batch_size: int, sentences decoded together.
            return_scores: bool, also return each translation's score.
            max_new_tokens, seed, jit_compile: as in `Transformer.generate`.
        """
        sampler = samplers.from_options(strategy, seed=seed, **options)
        ceremony = ceremony_for(self.backbone, check_jit_compile(jit_compile))
        return self._announce(
            texts, sampler, batch_size, max_new_tokens, return_scores, ceremony
        )

    def _announce(self, texts, sampler, batch_size, max_new_tokens, return_scores, ceremony):
        """Texts -> translations (and scores) with `sampler`, by `ceremony`."""
        if not is_int(batch_size) or batch_size < 1:
            raise ValueError(f"`batch_size` must be an int >= 1; received {batch_size!r}.")
        backbone = self.backbone
        sampler = sampler.check(backbone.target_vocab_size)
        max_new_tokens = check_max_new_tokens(max_new_tokens, backbone.max_length)
        if _is_ids(texts):
            return _generate_ids(backbone, texts, sampler, max_new_tokens, return_scores)
        single = isinstance(texts, (str, bytes))
        texts = _check_texts([texts] if single else _as_list(texts))
        translations, scores = ceremony.translate(
            texts, self.preprocessor, sampler, int(batch_size), max_new_tokens
        )
        translations = [t.decode("utf-8") for t in translations.numpy()]
        scores = scores.numpy()
        if single:
            return (translations[0], float(scores[0])) if return_scores else translations[0]
        return (translations, scores) if return_scores else translations

    def encode(self, texts):
        """Source strings -> 0-padded int32 ids `(batch, longest)`, each
        row ending with the end token and cut to the model's
        `max_length`."""
        ids, _ = self.preprocessor.encode_sources(list(texts))
        return ids.numpy().astype("int32")

    # -- saving and loading ---------------------------------------------------

    def save(self, filepath, *args, **kwargs):
        """A folder: writes a RUN_DIR (`model.keras` and the two tokenizer
        folders, each file atomically). A `.keras` file: Keras's
        `Model.save` of the whole task."""
        if os.fspath(filepath).endswith(".keras"):
            return super().save(filepath, *args, **kwargs)
        translator_files.save_run_dir(self.backbone, self.preprocessor, filepath)

    def export(self, export_dir, **options):
        """Writes a SavedModel for TF Serving into `export_dir/<version>/`
        and returns its path; see `keras_stageshow.export_for_serving` for
        the signatures and `options`."""
        return export_for_serving(self, export_dir, **options)

    def save_to_preset(self, preset_dir, max_shard_size=10):
        """Writes keras-hub's task layout, atomically: `task.json`,
        `preprocessor.json`, the backbone's `config.json`,
        `model.weights.h5` and `metadata.json`, each tokenizer as
        `source_tokenizer.json` / `target_tokenizer.json` with its
        SentencePiece model in `assets/`. Load it with
        `Translator.from_preset` or `keras_hub.models.Seq2SeqLM.from_preset`;
        share it with `keras_hub.upload_preset`."""
        translator_files.build_backbone(self.backbone)
        write_folder_atomically(
            preset_dir,
            lambda folder: super(Translator, self).save_to_preset(folder, max_shard_size),
        )

    @classmethod
    def from_preset(cls, preset, load_weights=True, dtype=None, **kwargs):
        """Loads what `save_to_preset` wrote: a local folder, or a handle
        keras-hub can fetch (`"kaggle://..."`, `"hf://..."`). A RUN_DIR, and
        a preset of earlier versions (the backbone and the two tokenizers,
        no `task.json`), are accepted too. `dtype`: as for `load`."""
        preset = translator_files.check_preset(preset)
        if run_dir.is_run_dir(preset):
            return cls.load(preset, dtype=dtype)
        if translator_files.is_backbone_only_preset(preset):
            backbone, preprocessor = translator_files.load_backbone_only_preset(
                preset, dtype
            )
            return cls(backbone, preprocessor, **kwargs)
        translator = super().from_preset(preset, load_weights=load_weights, **kwargs)
        backbone = translator_files.decoding_backbone(translator.backbone, dtype)
        if backbone is translator.backbone:
            return translator
        return cls(backbone, translator.preprocessor)

    @classmethod
    def load(cls, directory, dtype=None):
        """Loads a RUN_DIR (what `stageshow train` or `save` wrote), with
        `safe_mode=True`: no code from the folder is run. A keras-hub preset
        folder (`save_to_preset`) is accepted too.

        `dtype`: the dtype policy it translates in; by default its
        variables' dtype, so a run trained in mixed precision (the default
        on CPUs with AVX-512 BF16) translates in float32, exactly as its
        default export does. `"mixed_bfloat16"` decodes batches faster
        there, with translations that may differ from the export's
        (`translator_files.decoding_backbone` has the figures)."""
        directory = os.fspath(directory)
        if translator_files.is_preset_dir(directory):
            return cls.from_preset(directory, dtype=dtype)
        return cls(*translator_files.load_run_dir(directory, dtype))


def _jit_compile_of(translator):
    # Keras resolves `compile(jit_compile="auto")`; before any compile
    # the ceremony's own default ("auto": on) applies.
    jit = getattr(translator, "jit_compile", "auto")
    return jit if isinstance(jit, bool) else "auto"


def _generate_ids(backbone, inputs, sampler, max_new_tokens, return_scores):
    """Token ids in, voted ids out (`Transformer.generate`'s path)."""
    source_ids = inputs["source_ids"] if isinstance(inputs, dict) else inputs
    return generate(
        backbone, source_ids, max_new_tokens=max_new_tokens,
        strategy=sampler.strategy, return_scores=return_scores,
        **sampler.get_config(),
    )


def _is_ids(inputs):
    """Token ids (a dict with `source_ids`, or an integer array)."""
    if isinstance(inputs, dict):
        return True
    return getattr(getattr(inputs, "dtype", None), "is_integer", False) or (
        getattr(getattr(inputs, "dtype", None), "kind", "") in ("i", "u")
    )


def _as_list(texts):
    """A `tf.data.Dataset` of strings (batched or not) as a list."""
    if hasattr(texts, "as_numpy_iterator"):
        out = []
        for batch in texts.as_numpy_iterator():
            out.extend(batch.tolist() if hasattr(batch, "tolist") else [batch])
        return out
    return texts


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
