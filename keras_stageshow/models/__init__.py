from keras_stageshow.models.transformer import Transformer
from keras_stageshow.models.translator import Translator
