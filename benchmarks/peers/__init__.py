"""The peers keras_stageshow is measured against (benchmark-only code)."""
