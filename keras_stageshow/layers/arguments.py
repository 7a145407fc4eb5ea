"""The constructor arguments the stage-show layers share, checked once.

Each public layer lists its own arguments in its signature and docstring,
then hands them to `store_arguments`, which checks and normalises every one
(ranges, `keras.activations.get`, `keras.initializers.get`) and stores it as
a public attribute of the same name; `arguments_config` gives them back,
serialised, for `get_config`; `sublayer_arguments` passes them on to a
sublayer (initializers cloned, the owner's dtype policy);
`rehearsal_arguments`, `build_rounds` and `final_norm` configure the
sublayers that several layers make alike.
"""

import keras

from keras_stageshow.layers.utils import check_heads
from keras_stageshow.layers.utils import check_positive_int
from keras_stageshow.layers.utils import check_rate
from keras_stageshow.layers.utils import clone_initializer


def _keep(convert):
    """A normaliser that cannot fail, for the table below."""
    return lambda value, name: convert(value)


# name -> (check and normalise (value, name), serialise for get_config)
_ARGUMENTS = {
    "vocabulary_size": (check_positive_int, None),
    "num_layers": (check_positive_int, None),
    "d_model": (check_positive_int, None),
    "num_heads": (check_positive_int, None),
    "d_ff": (check_positive_int, None),
    "max_length": (check_positive_int, None),
    "dropout_rate": (check_rate, None),
    "attention_dropout_rate": (check_rate, None),
    "activation": (_keep(keras.activations.get), keras.activations.serialize),
    "norm_first": (_keep(bool), None),
    "layer_norm_epsilon": (_keep(float), None),
    "kernel_initializer": (_keep(keras.initializers.get), keras.initializers.serialize),
    "bias_initializer": (_keep(keras.initializers.get), keras.initializers.serialize),
    "kernel_regularizer": (_keep(keras.regularizers.get), keras.regularizers.serialize),
    "bias_regularizer": (_keep(keras.regularizers.get), keras.regularizers.serialize),
    "kernel_constraint": (_keep(keras.constraints.get), keras.constraints.serialize),
    "bias_constraint": (_keep(keras.constraints.get), keras.constraints.serialize),
}
_INITIALIZERS = ("kernel_initializer", "bias_initializer")

# Who takes which arguments, in signature order.
# `Rehearsal`'s Keras objects, for its four projections.
PROJECTION_ARGUMENTS = (
    *_INITIALIZERS, "kernel_regularizer", "bias_regularizer",
    "kernel_constraint", "bias_constraint",
)
ADJUST_ARGUMENTS = ("dropout_rate", "norm_first", "layer_norm_epsilon")
# `AskQuestions`, `WatchShow`: an attention block.
BLOCK_ARGUMENTS = (
    "num_heads", "dropout_rate", "attention_dropout_rate", "norm_first",
    "layer_norm_epsilon", *_INITIALIZERS,
)
# `CrewDiscussion`, `AssessmentDiscussion`: the feed-forward block.
FEED_FORWARD_ARGUMENTS = (
    "d_ff", "dropout_rate", "activation", "norm_first", "layer_norm_epsilon",
    *_INITIALIZERS,
)
# What a stack hands each of its rounds (their initializers keep the default).
STACK_TO_ROUND_ARGUMENTS = (
    "num_heads", "d_ff", "dropout_rate", "attention_dropout_rate", "activation",
    "norm_first", "layer_norm_epsilon",
)
# `PracticeRound`, `AssessmentRound`: one layer of a stack.
ROUND_ARGUMENTS = (*STACK_TO_ROUND_ARGUMENTS, *_INITIALIZERS)
# What a stack hands its `Preprocess`.
PREPROCESS_ARGUMENTS = ("vocabulary_size", "d_model", "max_length", "dropout_rate")
# `StageShow`, `OscarAssessment`: the encoder and the decoder.
STACK_ARGUMENTS = (
    "vocabulary_size", "num_layers", "d_model", "num_heads", "d_ff",
    "dropout_rate", "max_length", "attention_dropout_rate", "activation",
    "norm_first", "layer_norm_epsilon",
)


def store_arguments(layer, arguments, names):
    """Checks and normalises `arguments[name]` (a dict, e.g. the
    constructor's `locals()`) for each of `names` and stores it as
    `layer.<name>`; each error names the argument."""
    for name in names:
        check, _ = _ARGUMENTS[name]
        setattr(layer, name, check(arguments[name], name))
        if name == "num_heads" and "d_model" in names:
            check_heads(layer.d_model, layer.num_heads)


def arguments_config(layer, names):
    """`get_config`'s entries for `names`, Keras objects serialised."""
    config = {}
    for name in names:
        _, serialise = _ARGUMENTS[name]
        value = getattr(layer, name)
        config[name] = value if serialise is None else serialise(value)
    return config


def sublayer_arguments(layer, names):
    """`layer`'s arguments `names` as keyword arguments for a sublayer, with
    cloned initializers (never shared, see `clone_initializer`) and
    `layer`'s dtype policy."""
    arguments = {name: getattr(layer, name) for name in names}
    for name in _INITIALIZERS:
        if name in arguments:
            arguments[name] = clone_initializer(arguments[name])
    return {**arguments, "dtype": layer.dtype_policy}


def rehearsal_arguments(layer, width_name):
    """The arguments of an attention block's `Rehearsal`: `layer`'s heads
    (which must divide its `d_model`, called `width_name` in the error),
    attention dropout, cloned initializers and dtype policy."""
    return dict(
        num_heads=layer.num_heads,
        key_dim=check_heads(layer.d_model, layer.num_heads, width_name),
        dropout=layer.attention_dropout_rate,
        **sublayer_arguments(layer, _INITIALIZERS),
    )


def build_rounds(stack, round_class, prefix, *input_shapes):
    """`stack.num_layers` rounds of `round_class` (`PracticeRound`,
    `AssessmentRound`) with the stack's arguments, named `{prefix}_{i}` and
    built on `input_shapes`."""
    rounds = []
    for i in range(stack.num_layers):
        round_ = round_class(
            **sublayer_arguments(stack, STACK_TO_ROUND_ARGUMENTS),
            name=f"{prefix}_{i}",
        )
        round_.build(*input_shapes)
        rounds.append(round_)
    return rounds


def final_norm(stack):
    """The LayerNorm after a pre-norm stack's last round, or None: with the
    paper's post-norm every round already ends normalised."""
    if not stack.norm_first:
        return None
    return keras.layers.LayerNormalization(
        epsilon=stack.layer_norm_epsilon, dtype=stack.dtype_policy, name="final_norm"
    )
