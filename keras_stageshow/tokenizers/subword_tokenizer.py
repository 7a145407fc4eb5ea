"""`SubwordTokenizer`: keras-hub's `SentencePieceTokenizer` with the library's
reserved ids (`special_ids.py`), lowercasing and accent options, training
from a corpus, and the RUN_DIR files (`save` / `load`).

What keras-hub's layer does, we use as it is: the SentencePiece model as a
`.keras` / preset asset (`vocabulary.spm`), the tensorflow-text op inside
`tf.data` and `tf.function`, the `sentencepiece` library eagerly. What it
lacks, this module adds, each where it says why:

- reserved ids 0-3 (`<pad>`, `<unk>`, `<s>`, `</s>`), checked on every model
  set (`set_proto`), and training with them
  (`keras_hub.tokenizers.compute_sentence_piece_proto` cannot set them);
- normalization (lowercasing, accent stripping) before tokenizing;
- eager results as ragged `tf` tensors (keras-hub's eager path returns
  Python lists), which our `tf.data` pipeline and decoding slice;
- detokenizing only what a reader sees (`visible_ids`);
- a graph tokenizer made again at each trace (see `tokenize`).

The SavedModel export (`serving.py`) builds its own tensorflow-text op with a
distinct resource name per side from the same `proto` and `normalize`.
"""

import io
import itertools
import os

import keras
import keras_hub
import numpy as np

from keras_stageshow.files import read_json
from keras_stageshow.files import write_bytes_atomically
from keras_stageshow.files import write_json_atomically
from keras_stageshow.models.transformer import Transformer
from keras_stageshow.special_ids import END_ID
from keras_stageshow.special_ids import PAD_ID
from keras_stageshow.special_ids import START_ID
from keras_stageshow.special_ids import UNK_ID
from keras_stageshow.tokenizers.text import RESERVED_PIECES
from keras_stageshow.tokenizers.text import as_strings
from keras_stageshow.tokenizers.text import check_reserved
from keras_stageshow.tokenizers.text import flatten_corpus
from keras_stageshow.tokenizers.text import normalize_texts
from keras_stageshow.tokenizers.text import visible_ids

MODEL_FILE = "sentencepiece.model"
CONFIG_FILE = "tokenizer.json"


def _tf():
    import tensorflow as tf

    return tf


@keras.saving.register_keras_serializable(package="keras_stageshow")
class SubwordTokenizer(keras_hub.tokenizers.SentencePieceTokenizer):
    """The script: a SentencePiece subword tokenizer (the paper's BPE).

    A `keras_hub.tokenizers.SentencePieceTokenizer` (a Keras layer: the
    SentencePiece model travels as an asset of a `.keras` file or a
    keras-hub preset), run by tensorflow-text's op in `tf.data`,
    `tf.function` and the exported SavedModel, and by the `sentencepiece`
    library eagerly; both give the same ids. SentencePiece keeps whitespace
    inside its pieces, so detokenizing gives back the text with its
    punctuation and spacing (up to Unicode NFKC normalization and runs of
    whitespace): what sacreBLEU needs. Every model this class trains or
    loads has the library's reserved ids: padding 0 (`<pad>`), unknown 1
    (`<unk>`), start 2 (`<s>`) and end 3 (`</s>`).

    Args:
        proto: bytes of a serialized SentencePiece model with the reserved
            ids above (what `train` makes), or a path to one; `None` for a
            tokenizer whose model comes from a preset's assets.
        lowercase: bool, case-fold the text before tokenizing.
        strip_accents: bool, drop combining accents (`"é" -> "e"`) before
            tokenizing.
        **kwargs: `keras_hub.tokenizers.SentencePieceTokenizer` arguments
            (`config_file`, the preset file name; `name`; ...).

    Call arguments:
        inputs: a string or a 1-D batch of strings (Python or `tf.string`).

    Returns `tokenize`'s result: ids as a ragged int32 tensor `(batch, None)`
    (a 1-D tensor for one string). No start or end token is added.

    Example:
    >>> tok = SubwordTokenizer.train(["ein Hund läuft", "zwei Hunde"],
    ...                              vocabulary_size=40)
    >>> ids = tok.tokenize(["ein Hund"])           # ragged int32
    >>> tok.detokenize(ids).numpy()                 # [b'ein Hund']
    >>> tok.save("run/source_tokenizer")            # RUN_DIR files
    >>> tok.save_to_preset("preset")                # keras-hub preset

    References:
        - [Kudo and Richardson, 2018](https://arxiv.org/abs/1808.06226)
    """

    # keras-hub finds a preset's tokenizer class by the model it belongs to.
    backbone_cls = Transformer

    def __init__(self, proto=None, lowercase=False, strip_accents=False, **kwargs):
        if proto is not None and not isinstance(proto, (bytes, str, os.PathLike)):
            raise ValueError(
                "`proto` must be the bytes of a trained SentencePiece model (or "
                f"a path to one); received {type(proto).__name__}. Use "
                "`SubwordTokenizer.train(texts)` or `SubwordTokenizer.load(dir)`."
            )
        if isinstance(proto, os.PathLike):
            proto = os.fspath(proto)
        if isinstance(proto, bytes) and not proto:
            raise ValueError(
                "`proto` is empty: pass the bytes of a trained SentencePiece "
                "model (`SubwordTokenizer.train(texts)`)."
            )
        kwargs.setdefault("dtype", "int32")
        super().__init__(proto=proto, **kwargs)
        self.lowercase = bool(lowercase)
        self.strip_accents = bool(strip_accents)

    def set_proto(self, proto):
        # keras-hub accepts any SentencePiece model; decoding and the loss
        # rely on ids 0-3 being pad/unk/start/end, so check them here, the
        # one place every model passes through (constructor, assets, preset).
        if isinstance(proto, bytes):
            check_reserved(proto, "proto")
        super().set_proto(proto)
        if self.proto is not None and not isinstance(proto, bytes):
            check_reserved(self.proto, str(proto))

    # -- training -----------------------------------------------------------

    @classmethod
    def train(
        cls,
        texts,
        vocabulary_size=8000,
        model_type="bpe",
        lowercase=False,
        strip_accents=False,
        character_coverage=1.0,
        max_sentences=1_000_000,
        **kwargs,
    ):
        """Learns a subword vocabulary from a corpus.

        Args:
            texts: a list of strings (or of lists of strings, e.g.
                `[german, english]` for one vocabulary shared by both).
            vocabulary_size: int, pieces in the vocabulary, reserved ids
                included. A small corpus may get fewer.
            model_type: `"bpe"` (as the paper) or `"unigram"`.
            lowercase, strip_accents: see the class.
            character_coverage: float, share of characters kept as pieces.
            max_sentences: int, sentences sampled for training at most.
            **kwargs: passed to the constructor (`config_file`, `name`).
        """
        # keras-hub's `compute_sentence_piece_proto` wraps the same trainer
        # but cannot set the pad/unk/start/end ids this library reserves, so
        # the trainer is called directly.
        import sentencepiece

        if not isinstance(vocabulary_size, (int, np.integer)) or vocabulary_size < 5:
            raise ValueError(
                f"`vocabulary_size` must be an int of at least 5; received "
                f"{vocabulary_size!r}."
            )
        if model_type not in ("bpe", "unigram"):
            raise ValueError(
                f"`model_type` must be 'bpe' or 'unigram'; received {model_type!r}."
            )
        sentences = flatten_corpus(texts)
        sentences = as_strings(
            normalize_texts(sentences, lowercase, strip_accents)
        )
        sentences = [s for s in sentences if s.strip()]
        if not sentences:
            raise ValueError(
                "`texts` holds no text to learn a vocabulary from (it is empty "
                "or only whitespace). Pass the training sentences."
            )
        model = io.BytesIO()
        sentencepiece.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences),
            model_writer=model,
            vocab_size=int(vocabulary_size),
            model_type=model_type,
            character_coverage=character_coverage,
            pad_id=PAD_ID,
            unk_id=UNK_ID,
            bos_id=START_ID,
            eos_id=END_ID,
            pad_piece=RESERVED_PIECES[0],
            unk_piece=RESERVED_PIECES[1],
            bos_piece=RESERVED_PIECES[2],
            eos_piece=RESERVED_PIECES[3],
            # A small corpus may not fill the requested size: take fewer.
            hard_vocab_limit=False,
            input_sentence_size=int(max_sentences),
            shuffle_input_sentence=True,
            num_threads=max(1, min(os.cpu_count() or 1, 8)),
            minloglevel=2,
        )
        return cls(
            model.getvalue(), lowercase=lowercase, strip_accents=strip_accents,
            **kwargs,
        )

    # -- text <-> ids -------------------------------------------------------

    @property
    def pad_id(self):
        return PAD_ID

    @property
    def start_id(self):
        return START_ID

    @property
    def end_id(self):
        return END_ID

    def normalize(self, texts):
        """Lowercasing and accent stripping as configured (TF string ops)."""
        return normalize_texts(texts, self.lowercase, self.strip_accents)

    def tokenize(self, inputs):
        """Strings -> subword ids (a ragged int32 tensor; a scalar string
        gives a 1-D tensor). No start or end token is added."""
        tf = _tf()
        texts = self.normalize(inputs)
        if not tf.executing_eagerly():
            self._renew_graph_tokenizer()
            return super().tokenize(texts)
        if texts.shape.rank == 0:
            return self.tokenize(texts[tf.newaxis])[0]
        # keras-hub's eager path runs the `sentencepiece` library and gives
        # Python lists; our pipeline and decoding slice ragged tensors.
        pieces = super().tokenize(texts)
        values = np.fromiter(itertools.chain.from_iterable(pieces), np.int32)
        lengths = np.fromiter(map(len, pieces), np.int64, count=len(pieces))
        return tf.RaggedTensor.from_row_lengths(values, lengths)

    def detokenize(self, ids):
        """Ids (dense 0-padded, or ragged) -> strings. Padding, start and
        end are dropped, and so is everything after the first end token."""
        tf = _tf()
        if not isinstance(ids, tf.RaggedTensor):
            ids = tf.convert_to_tensor(ids)
            if not ids.dtype.is_integer:
                raise TypeError(
                    f"`ids` must be integer token ids; received dtype {ids.dtype}."
                )
            if ids.shape.rank == 1:
                return self.detokenize(ids[tf.newaxis])[0]
            ids = tf.RaggedTensor.from_tensor(ids)
        ids = visible_ids(ids, self.vocabulary_size())
        if not tf.executing_eagerly():
            self._renew_graph_tokenizer()
            return super().detokenize(ids)
        if ids.nrows() == 0:
            return tf.zeros([0], tf.string)
        return tf.constant(super().detokenize(ids), tf.string)

    def detokenize_to_strings(self, ids):
        """`detokenize`, as a list of Python strings."""
        return as_strings(self.detokenize(ids))

    def _renew_graph_tokenizer(self):
        # keras-hub makes the tensorflow-text op once, in `set_proto`. The
        # op's model lives in a resource owned by the op's kernel, and
        # TensorFlow drops its kernel cache whenever a global seed is set
        # (`keras.utils.set_random_seed`), so a tokenizer made before that
        # fails in `tf.data` with "Resource ... SentencepieceResource does
        # not exist". Setting the model again, outside the graph being
        # traced, makes a fresh one for each trace (a few milliseconds).
        with _tf().init_scope():
            self.set_proto(self.proto)

    # -- saving -------------------------------------------------------------

    def get_config(self):
        config = super().get_config()
        config.update(
            {"lowercase": self.lowercase, "strip_accents": self.strip_accents}
        )
        return config

    def run_dir_config(self):
        """The `tokenizer.json` of a RUN_DIR (and of a SavedModel's assets)."""
        return {
            "kind": "sentencepiece",
            "model_file": MODEL_FILE,
            "vocabulary_size": self.vocabulary_size(),
            "lowercase": self.lowercase,
            "strip_accents": self.strip_accents,
        }

    def save(self, directory):
        """Writes `sentencepiece.model` and `tokenizer.json` into
        `directory`, each atomically (a RUN_DIR's tokenizer folder; for a
        keras-hub preset use `save_to_preset`)."""
        os.makedirs(directory, exist_ok=True)
        write_bytes_atomically(os.path.join(directory, MODEL_FILE), self.proto)
        write_json_atomically(
            os.path.join(directory, CONFIG_FILE), self.run_dir_config()
        )

    @classmethod
    def load(cls, directory, **kwargs):
        """Loads what `save` wrote, checking the files on the way."""
        if not os.path.isdir(directory):
            raise FileNotFoundError(
                f"Tokenizer folder {os.fspath(directory)!r} does not exist. Pass "
                "the folder that `SubwordTokenizer.save` (or `stageshow train`) "
                "wrote."
            )
        config = read_json(
            os.path.join(directory, CONFIG_FILE), "Tokenizer config"
        )
        model_path = os.path.join(directory, config.get("model_file", MODEL_FILE))
        if not os.path.isfile(model_path):
            raise FileNotFoundError(
                f"Tokenizer model {model_path!r} is missing; the tokenizer "
                "folder is incomplete. Save the tokenizer again."
            )
        with open(model_path, "rb") as f:
            proto = f.read()
        if not proto:
            raise ValueError(
                f"Tokenizer model {model_path!r} is empty. Save the tokenizer "
                "again or train a new one."
            )
        check_reserved(proto, model_path)
        return cls(
            proto,
            lowercase=config.get("lowercase", False),
            strip_accents=config.get("strip_accents", False),
            **kwargs,
        )
