"""keras_stageshow: the encoder-decoder Transformer as a stage show.

The encoder is a stage show (`StageShow`), the decoder is the Oscar award
assessment (`OscarAssessment`); see the README for the stage-name <-> paper
table. Importing the package changes no global Keras or TensorFlow setting.
"""

from keras_stageshow.layers import Adjust
from keras_stageshow.layers import AskQuestions
from keras_stageshow.layers import AssessmentDiscussion
from keras_stageshow.layers import AssessmentRound
from keras_stageshow.layers import CrewDiscussion
from keras_stageshow.layers import OscarAssessment
from keras_stageshow.layers import PracticeRound
from keras_stageshow.layers import Preprocess
from keras_stageshow.layers import Rehearsal
from keras_stageshow.layers import StageShow
from keras_stageshow.layers import Voting
from keras_stageshow.layers import WatchShow
from keras_stageshow.models import Transformer
from keras_stageshow.models import Translator
from keras_stageshow.tokenizers import SubwordTokenizer
from keras_stageshow.training import MaskedAccuracy
from keras_stageshow.training import MaskedSparseCategoricalCrossentropy
from keras_stageshow.training import TransformerSchedule

__version__ = "0.1.0"


def __getattr__(name):
    # `export_for_serving` needs TensorFlow; it is imported when first used.
    if name == "export_for_serving":
        from keras_stageshow.serving import export_for_serving

        return export_for_serving
    raise AttributeError(f"module 'keras_stageshow' has no attribute {name!r}")
