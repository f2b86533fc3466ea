"""Finding and restoring training checkpoints, with errors that name the fix.

Training (`training.TrainingLoop.restore`: everything, to resume), the
evaluation command (`evaluate`: only the agent) and the evaluator during
training (`periodic_evaluation`) all read the checkpoints training.py
writes: `tf.train.Checkpoint(agent=..., optimizer=..., num_env_frames=...,
step=...)` under `<logdir>/checkpoints/ckpt-N`. They restore them here, so a
checkpoint that cannot be used fails the same way everywhere: a
`CheckpointError` that says whether the file is damaged or was written for
another model, and what to do about it.

    path = checkpoints.resolve('runs/pong')   # .../checkpoints/ckpt-12
    checkpoints.restore_agent(agent, path, '--level=pong --torso=shallow')

TensorFlow is imported when first needed, so that a process that never
restores (evaluate's parent process with an untrained agent) does not load
it.
"""

import collections
import os


class CheckpointError(ValueError):
  """A checkpoint is missing, unreadable, or does not fit the model."""


class CorruptCheckpointError(CheckpointError):
  """A checkpoint's files are damaged or incomplete (an older one may do)."""


# What to tell the user when a checkpoint cannot be restored:
#   corrupt: the files are damaged or incomplete;
#   mismatch: the checkpoint is sound but was written for another model
#     (level, action set or torso).
Fixes = collections.namedtuple('Fixes', 'corrupt mismatch')

EVALUATION_FIXES = Fixes(
    corrupt='Evaluate another checkpoint of the run (the CheckpointManager '
    'keeps the last ones in <logdir>/checkpoints; pass one as '
    '--checkpoint=<logdir>/checkpoints/ckpt-N).',
    mismatch='pass the --level and --torso the run was trained with.')

TRAINING_FIXES = Fixes(
    corrupt='Delete it (or its directory) to start afresh, or pass a '
    'different --logdir.',
    mismatch='pass the --level and --torso the run was trained with, or a '
    'different --logdir to start afresh.')


def resolve(path):
  """A `--checkpoint` value -> the checkpoint prefix to restore, or None.

  Args:
    path: 'none' (or None / ''), a run's logdir (its `checkpoints/`
      subdirectory is searched), a checkpoint directory, or a checkpoint
      prefix such as `<logdir>/checkpoints/ckpt-12` (a path to its `.index`
      file is accepted too).

  Returns:
    The newest checkpoint's prefix, or None for 'none'.

  Raises:
    CheckpointError: nothing restorable is there.
  """
  if not path or str(path).lower() == 'none':
    return None
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  path = os.fspath(path)
  how = ("pass a run's --logdir (its checkpoints/ subdirectory is searched), "
         'a checkpoint prefix such as <logdir>/checkpoints/ckpt-12, or '
         "'none' for an untrained agent")
  if os.path.isdir(path):
    for directory in (os.path.join(path, 'checkpoints'), path):
      latest = tf.train.latest_checkpoint(directory)
      if latest:
        return latest
    raise CheckpointError(f'No checkpoint found in {path!r}: {how}.')
  if os.path.exists(path + '.index'):
    return path
  if path.endswith('.index') and os.path.exists(path):
    return path[:-len('.index')]
  raise CheckpointError(f'Checkpoint {path!r} does not exist: {how}.')


def restore(checkpoint, path, fixes, model='', partial=False):
  """Restores `checkpoint`'s objects from the checkpoint at `path`.

  Every variable that exists in `checkpoint`'s objects must come from the
  file: a deep-torso checkpoint read into a shallow agent would otherwise
  leave the torso at its random initial values without a word.

  Args:
    checkpoint: `tf.train.Checkpoint` of the objects to restore (whose
      variables exist: build the agent by calling it once first).
    path: checkpoint prefix (see `resolve`).
    fixes: `Fixes`, what the error messages advise (`EVALUATION_FIXES`,
      `TRAINING_FIXES`).
    model: what the objects were built for, for error messages (e.g.
      'agent built for --level=pong --torso=shallow (6 actions)').
    partial: the file may hold objects `checkpoint` does not ask for (an
      agent restored from a training checkpoint leaves the optimiser's slots
      unread); without it TensorFlow warns about them.

  Returns:
    The restore status (`tf.train.Checkpoint.restore`'s): objects created
    later are restored when they are.

  Raises:
    CheckpointError: the checkpoint is unreadable, or it does not fit.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  model = model or 'model'

  def corrupt(error):
    return CorruptCheckpointError(
        f'Cannot restore checkpoint {path!r}: it is corrupt or incomplete '
        f'({_describe(error)}). {fixes.corrupt}')

  # Read every tensor first: the bundle's checksums then tell a damaged file
  # apart from a model mismatch, whatever exception type the reader raises
  # (a truncated file gives an IndexError, a flipped byte a DataLossError).
  try:
    reader = tf.train.load_checkpoint(path)
    for name in reader.get_variable_to_shape_map():
      reader.get_tensor(name)
  except Exception as e:  # pylint: disable=broad-except
    raise corrupt(e) from e
  try:
    status = checkpoint.restore(path)
    status.assert_existing_objects_matched()
  except tf.errors.OpError as e:
    raise corrupt(e) from e
  except (AssertionError, ValueError) as e:
    raise CheckpointError(
        f'Checkpoint {path!r} does not fit the {model}: {_describe(e)}. It '
        'was written for another level, action set or torso: '
        f'{fixes.mismatch}') from e
  if partial:
    status.expect_partial()
  return status


def numbered_checkpoints(directory):
  """Prefixes of the `ckpt-N` checkpoints in `directory`, newest (highest N)
  first, whether or not TensorFlow's `checkpoint` state file lists them."""
  found = []
  if os.path.isdir(directory):
    for name in os.listdir(directory):
      stem, dot, extension = name.rpartition('.')
      number = stem.rpartition('-')[2]
      if dot and extension == 'index' and number.isdigit():
        found.append((int(number), os.path.join(directory, stem)))
  return [path for _, path in sorted(found, reverse=True)]


def restore_agent(agent, path, description='', fixes=EVALUATION_FIXES):
  """Loads an agent's weights (only them) from a training checkpoint.

  The optimiser's slots, frame counter and step of the training checkpoint
  stay unread.

  Args:
    agent: `networks.ImpalaAgent` with its variables built (call it once).
    path: checkpoint prefix (see `resolve`).
    description: what the agent was built for (e.g. '--level=pong
      --torso=shallow (6 actions)'), for error messages.
    fixes: `Fixes` for the error messages.

  Raises:
    CheckpointError: as `restore`.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  restore(tf.train.Checkpoint(agent=agent), path, fixes,
          model=f'agent built for {description or "this level"}',
          partial=True)


def _describe(error, limit=300):
  """'Type: first line of the message', shortened: TensorFlow's messages
  can run to pages of variable names."""
  text = str(error).strip().split('\n')[0]
  if len(text) > limit:
    text = text[:limit] + '...'
  return f'{type(error).__name__}: {text}'
