"""`AssessmentDiscussion`: the decoder's feed-forward block (the same computation
as `CrewDiscussion`, under the decoder's stage name)."""

import keras

from keras_stageshow.layers.crew_discussion import CrewDiscussion


@keras.saving.register_keras_serializable(package="keras_stageshow")
class AssessmentDiscussion(CrewDiscussion):
    """Assessment discussion: the decoder's position-wise feed-forward network.

    After watching the show, the committee discusses each position on its
    own. It is the same computation as the stage show's `CrewDiscussion`
    (paper section 3.3: `max(0, x W1 + b1) W2 + b2`, then `Adjust`), kept
    under its own name so the decoder reads like the Oscar assessment.

    Args:
        d_ff: int, width of the inner layer.
        **kwargs: the other `CrewDiscussion` arguments.

    Call arguments:
        x: `(batch, target_len, d_model)`.
        training: bool, whether dropout is active.

    Example:
    >>> discussion = AssessmentDiscussion(d_ff=32)
    >>> discussion(np.ones((2, 3, 8), "float32")).shape
    (2, 3, 8)
    """
