"""Evaluation during training: checkpoints played with the evaluation protocol.

Published learning curves report returns of the evaluation protocol, not
the training episodes' returns: Atari games are played to the end (a life
loss does not end them), from 1..30 no-op starts, and the actions are either
sampled from the policy or its most probable ones ("greedy"). Training
returns differ from both (they mix policies of several learner steps and, in
Atari, count a game per life only in the log).

`Evaluator` watches a run's checkpoints. Whenever the newest one has reached
the next multiple of `every_frames` environment frames, it plays `episodes`
episodes greedily and `episodes` episodes sampling from the policy, and
writes, at step = the checkpoint's environment frames, to the TensorBoard log
`<logdir>/evaluation`:

    evaluation/greedy_return      mean return of the greedy episodes
    evaluation/sampled_return     mean return of the sampled episodes

It runs in a process of its own (the local wiring starts one with
`--eval_every_frames`), so the learner never waits for it; the learner writes
a checkpoint at each multiple of `every_frames` for it to find. If an
evaluation takes longer than `every_frames` of training, the evaluator skips
to the newest checkpoint rather than falling behind.

    python -m scalable_agent.periodic_evaluation --level=pong \\
        --logdir=runs/pong --every_frames=1e6 --episodes=4

With --once it evaluates the newest checkpoint at once and exits.
"""

import argparse
import logging
import os
import time

import numpy as np

from scalable_agent import checkpoints
from scalable_agent import console
from scalable_agent import play
from scalable_agent import suites

# The step counter's key in a training checkpoint (training.TrainingLoop).
_FRAMES_KEY = 'num_env_frames/.ATTRIBUTES/VARIABLE_VALUE'


def checkpoint_frames(checkpoint_path):
  """Environment frames a training checkpoint was written at."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return int(tf.train.load_checkpoint(checkpoint_path).get_tensor(_FRAMES_KEY))


class Evaluator:
  """Plays a run's checkpoints as they appear; see the module docstring.

  Args:
    level: the run's --level (one level; suites are evaluated with
      `python -m scalable_agent.evaluate`).
    logdir: the run's logdir (checkpoints are read from its checkpoints/).
    every_frames: evaluate a checkpoint once per this many frames.
    episodes: episodes per policy (greedy and sampled) per evaluation.
    torso: the run's --torso (None: the suite's default).
    seed: seeds the environments and the sampled actions.
  """

  def __init__(self, level, logdir, every_frames, episodes=4, torso=None,
               seed=0):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    self.config = suites.resolve(level)
    if len(self.config.levels) > 1:
      raise ValueError(
          f'{level!r} is a multi-level suite: evaluate its checkpoints with '
          'python -m scalable_agent.evaluate, which plays every level.')
    if every_frames <= 0 or episodes <= 0:
      raise ValueError(f'every_frames ({every_frames}) and episodes '
                       f'({episodes}) must be positive.')
    self.logdir = logdir
    self.every_frames = every_frames
    self.episodes = episodes
    self._torso = torso
    self._seed = seed
    self._level = self.config.levels[0]
    self._name = play.report_name(self.config, self._level)
    self._policy = None
    self.next_due = every_frames
    self._writer = tf.summary.create_file_writer(
        os.path.join(logdir, 'evaluation'))

  def _play(self, checkpoint, greedy):
    env = play.make_evaluation_environment(
        self.config, self._level, self.episodes, seed=self._seed)
    try:
      if self._policy is None:
        self._policy = play.Policy(self.config, env.num_actions,
                                   self._torso, None, env.reset())
      checkpoints.restore_agent(self._policy.agent, checkpoint)
      episodes = play.play_level(
          self._policy, env, self.episodes, self._name, lambda e: None,
          rng=np.random.RandomState(self._seed), greedy=greedy)
    finally:
      env.close()
    return float(np.mean([e.episode_return for e in episodes]))

  def evaluate_if_due(self):
    """Evaluates the newest checkpoint if it is due.

    Returns:
      (frames, greedy mean return, sampled mean return), or None if no
      checkpoint was due (or it vanished while being read: the training
      loop keeps only the newest few).
    """
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    checkpoint = tf.train.latest_checkpoint(
        os.path.join(self.logdir, 'checkpoints'))
    if checkpoint is None:
      return None
    try:
      frames = checkpoint_frames(checkpoint)
      if frames < self.next_due:
        return None
      greedy = self._play(checkpoint, greedy=True)
      sampled = self._play(checkpoint, greedy=False)
    except (tf.errors.NotFoundError, checkpoints.CorruptCheckpointError):
      # Deleted (or being replaced) under us: the next poll takes a newer
      # one. A checkpoint of another model (wrong --torso) is an error.
      return None
    self.next_due = (frames // self.every_frames + 1) * self.every_frames
    with self._writer.as_default(step=frames):
      tf.summary.scalar('evaluation/greedy_return', greedy)
      tf.summary.scalar('evaluation/sampled_return', sampled)
    self._writer.flush()
    return frames, greedy, sampled

  def run(self, poll_s=10., should_stop=lambda: False):
    """Evaluates due checkpoints until `should_stop()` (or forever)."""
    while not should_stop():
      result = self.evaluate_if_due()
      if result is not None:
        logging.getLogger('evaluator').info(self.describe(result))
      else:
        time.sleep(poll_s)

  def describe(self, result):
    """A console line for `evaluate_if_due`'s result (the logger adds
    the `[evaluator]` prefix)."""
    frames, greedy, sampled = result
    return (f'frames {frames:,}: return greedy {greedy:.2f}, '
            f'sampled {sampled:.2f} ({self.episodes} episodes each)')


def parse_args(argv=None):
  parser = argparse.ArgumentParser(
      prog='python -m scalable_agent.periodic_evaluation',
      description=__doc__.split('\n')[0])
  parser.add_argument('--level', required=True)
  parser.add_argument('--logdir', required=True)
  parser.add_argument('--every_frames', type=float, default=1e6)
  parser.add_argument('--episodes', type=int, default=4,
                      help='Episodes per policy (greedy, sampled).')
  parser.add_argument('--torso', default=None)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--poll_s', type=float, default=10.)
  parser.add_argument('--once', action='store_true',
                      help='Evaluate the newest checkpoint now, then exit '
                      '(for a run that trained without an evaluator).')
  console.add_flags(parser)
  return parser.parse_args(argv)


def main(argv=None):
  args = parse_args(argv)
  console.setup(args.tf_logs)
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  # One thread: the evaluator shares the machine with training.
  tf.config.threading.set_intra_op_parallelism_threads(1)
  tf.config.threading.set_inter_op_parallelism_threads(1)
  evaluator = Evaluator(args.level, args.logdir, int(args.every_frames),
                        args.episodes, args.torso, args.seed)
  if args.once:
    evaluator.next_due = 0
    result = evaluator.evaluate_if_due()
    if result is None:
      raise SystemExit(f'No checkpoint in {args.logdir}/checkpoints.')
    print(evaluator.describe(result))
    return
  try:
    evaluator.run(args.poll_s)
  except KeyboardInterrupt:
    pass


if __name__ == '__main__':
  main()
