"""What the `stageshow` command line keeps off stderr, and how it shows the
library's warnings.

The command line is quiet: unless `TF_CPP_MIN_LOG_LEVEL` is set, it sets it
to 3 before TensorFlow loads and drops the C++ lines TensorFlow 2.21 prints
while it loads regardless of that setting (`quiet_tensorflow`); it also
drops TensorFlow's `tf.function` retracing warning, which the decoding's
shape buckets cause by design. Python warnings are kept, and the library's
own (invalid UTF-8 lines, ...) read `stageshow <command>: warning: ...`
(`show_library_warnings`). For the command line only: the library itself
changes no log setting.
"""

import contextlib
import logging
import os
import re
import sys
import tempfile

# TensorFlow's C++ log level the command line sets when the user has not:
# 3 keeps only FATAL lines (every error that stops a command also reaches
# Python as an exception, with its message).
QUIET_TF_CPP_MIN_LOG_LEVEL = "3"
# A line of TensorFlow's C++ log (absl format: severity, date, time, thread,
# file:line]; before absl is initialized the time is 00:00:<epoch seconds>)
# of severity INFO, WARNING or ERROR, and the notice absl prints before its
# first such line.
_TF_CPP_LOG_LINE = re.compile(
    rb"^([IWE]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [^\]\s]+:\d+\] |"
    rb"WARNING: All log messages before absl::InitializeLog\(\) is called)"
)


def quiet_tensorflow():
    """Keeps TensorFlow's own chatter off the command line's stderr.

    Unless the user has set `TF_CPP_MIN_LOG_LEVEL` (then it is left to
    them), it is set to `QUIET_TF_CPP_MIN_LOG_LEVEL` and TensorFlow is
    imported with its C++ INFO/WARNING/ERROR lines dropped: TensorFlow 2.21
    prints some (oneDNN, CUDA stubs) while loading, before it reads
    `TF_CPP_MIN_LOG_LEVEL` (absl's log is not initialized yet; see
    tensorflow/tensorflow#102212). Whatever else is written meanwhile is
    kept. It also drops TensorFlow's "triggered tf.function retracing"
    warning, which the decoding's shape buckets cause by design; every
    other warning is kept. For the command line only: the library itself
    changes no log setting.
    """
    tf_logger = logging.getLogger("tensorflow")
    tf_logger.addFilter(_drop_retracing_warning)  # once: filters are a set
    if "TF_CPP_MIN_LOG_LEVEL" in os.environ or "tensorflow" in sys.modules:
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = QUIET_TF_CPP_MIN_LOG_LEVEL
    with _tf_cpp_log_dropped():
        import tensorflow  # noqa: F401


def _drop_retracing_warning(record):
    return "triggered tf.function retracing" not in record.getMessage()


@contextlib.contextmanager
def _tf_cpp_log_dropped():
    """Sends file descriptor 2 to a temporary file meanwhile, then writes
    back every line that is not a TensorFlow C++ log line."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no stderr to filter
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = b"".join(
                line for line in captured if not _TF_CPP_LOG_LINE.match(line)
            )
            while kept:
                kept = kept[os.write(2, kept):]


class _CommandLineWarnings(logging.StreamHandler):
    """The library's warnings (logger `keras_stageshow`) on stderr, as
    `stageshow <command>: warning: ...`."""

    def __init__(self, command):
        super().__init__(sys.stderr)
        self.setFormatter(
            logging.Formatter(f"stageshow {command}: warning: %(message)s")
        )


def show_library_warnings(command):
    """Shows the library's warnings on stderr as `stageshow <command>:
    warning: ...` (once, however often `main` runs in a process)."""
    logger = logging.getLogger("keras_stageshow")
    for handler in list(logger.handlers):
        if isinstance(handler, _CommandLineWarnings):  # an earlier `main` call
            logger.removeHandler(handler)
    logger.addHandler(_CommandLineWarnings(command))
