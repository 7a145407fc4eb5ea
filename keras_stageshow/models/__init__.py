"""The models: `Transformer` (the network) and `Translator` (text in, text out)."""

from keras_stageshow.models.transformer import Transformer
from keras_stageshow.models.translator import Translator
