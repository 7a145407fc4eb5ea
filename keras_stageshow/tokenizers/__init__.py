"""Tokenizers: ideas -> story -> script (text to token ids and back)."""

from keras_stageshow.tokenizers.subword_tokenizer import SubwordTokenizer
