"""The reserved token ids, read by the tokenizers, the model's masks, the
decoding core, the datasets and the SavedModel export.

Every vocabulary keras_stageshow builds starts with these four entries, so a
model, its tokenizers and its exported graph agree on them without passing
them around.
"""

PAD_ID = 0  # padding: masked out everywhere, never generated
UNK_ID = 1  # a piece the vocabulary does not have
START_ID = 2  # the first rumour: what the decoder starts from
END_ID = 3  # the end of a sentence: generation stops after it
