"""The stage-show layers, one public layer per module."""

from keras_stageshow.layers.adjust import Adjust
from keras_stageshow.layers.ask_questions import AskQuestions
from keras_stageshow.layers.assessment_discussion import AssessmentDiscussion
from keras_stageshow.layers.assessment_round import AssessmentRound
from keras_stageshow.layers.crew_discussion import CrewDiscussion
from keras_stageshow.layers.oscar_assessment import OscarAssessment
from keras_stageshow.layers.practice_round import PracticeRound
from keras_stageshow.layers.preprocess import Preprocess
from keras_stageshow.layers.rehearsal import Rehearsal
from keras_stageshow.layers.stage_show import StageShow
from keras_stageshow.layers.voting import Voting
from keras_stageshow.layers.watch_show import WatchShow
