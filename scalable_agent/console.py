"""One console set-up for every entry point: logging and TensorFlow's noise.

Every command (`scalable_agent`, evaluate, report, learning_curves,
periodic_evaluation, benchmark) parses its flags with argparse, adds
`--tf_logs` with `add_flags`, and calls `setup` before anything imports
TensorFlow. Its own lines then go through Python's `logging` to stdout as
`[learner] step ...`, `[actor 0] ...`: the logger's name in brackets.

TensorFlow's C++ start-up lines (CUDA probing on a machine without a GPU,
CPU-feature notes) are dropped unless `--tf_logs` is given: a new user sees
the project's lines. Some of them are written before TensorFlow reads
TF_CPP_MIN_LOG_LEVEL ("All log messages before absl::InitializeLog() is
called are written to STDERR"), so `setup` also imports TensorFlow with the
process's stderr pointed at a temporary file, and replays that file if the
import fails.
"""

import logging
import os
import sys
import tempfile


def add_flags(parser):
  """Adds the console flags to an argparse parser."""
  parser.add_argument(
      '--tf_logs', action='store_true',
      help="Show TensorFlow's own C++ and Python log lines (hidden by "
      'default).')


def setup(tf_logs=False, import_tensorflow=True):
  """Configures logging; call once, first thing in an entry point.

  Args:
    tf_logs: keep TensorFlow's log lines.
    import_tensorflow: import TensorFlow now (quietly unless `tf_logs`), so
      that later imports find it loaded. Commands that never use TensorFlow
      pass False.
  """
  logging.basicConfig(level=logging.INFO, format='[%(name)s] %(message)s',
                      stream=sys.stdout, force=True)
  if tf_logs:
    os.environ.pop('TF_CPP_MIN_LOG_LEVEL', None)
  else:
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
  if import_tensorflow and 'tensorflow' not in sys.modules:
    if tf_logs:
      import tensorflow  # pylint: disable=g-import-not-at-top,unused-import  # noqa: F401
    else:
      _import_tensorflow_quietly()
  if not tf_logs:
    # TensorFlow's Python warnings (retracing, deprecations) go to the
    # 'tensorflow' logger, its checkpoint notes to absl's; errors still show.
    logging.getLogger('tensorflow').setLevel(logging.ERROR)
    logging.getLogger('absl').setLevel(logging.ERROR)
    # TensorBoard's event reader narrates every file it opens.
    logging.getLogger('tensorboard').setLevel(logging.WARNING)


def _import_tensorflow_quietly():
  stderr_fd = sys.stderr.fileno()
  saved = os.dup(stderr_fd)
  with tempfile.TemporaryFile() as captured:
    sys.stderr.flush()
    os.dup2(captured.fileno(), stderr_fd)
    try:
      import tensorflow  # pylint: disable=g-import-not-at-top,unused-import  # noqa: F401
    except BaseException:
      os.dup2(saved, stderr_fd)
      captured.seek(0)
      sys.stderr.write(captured.read().decode(errors='replace'))
      raise
    finally:
      os.dup2(saved, stderr_fd)
      os.close(saved)
