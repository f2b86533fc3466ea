"""Tests of the learning-curve comparison (CSV, table, PNG)."""

import csv
import os

import pytest
import tensorflow as tf

from scalable_agent import learning_curves


def _write_run(logdir, points, greedy=()):
  """A run's event files: episode_return/pong at (frames, return) points,
  greedy evaluation returns in logdir/evaluation."""
  writer = tf.summary.create_file_writer(logdir)
  with writer.as_default():
    for frames, value in points:
      tf.summary.scalar('episode_return/pong', value, step=frames)
  writer.flush()
  if greedy:
    writer = tf.summary.create_file_writer(os.path.join(logdir, 'evaluation'))
    with writer.as_default():
      for frames, value in greedy:
        tf.summary.scalar('evaluation/greedy_return', value, step=frames)
    writer.flush()


def test_compare_writes_the_table_csv_and_png(tmp_path):
  a, b = str(tmp_path / 'a'), str(tmp_path / 'b')
  _write_run(a, [(1_000_000, -20.), (2_400_000, -15.), (2_600_000, -12.),
                 (5_000_000, 3.)], greedy=[(2_000_000, -18.), (5_002_240, 9.)])
  _write_run(b, [(1_000_000, -21.), (2_480_000, -20.5)])  # Stopped early.
  paths = learning_curves.compare([a, b], str(tmp_path / 'out'),
                                  at=(2.5e6, 5e6), labels=['fast', 'paper'])
  table = open(paths['table']).read().splitlines()
  assert table[0] == ('| run | train 2.5M | train 5M | greedy 2.5M | '
                      'greedy 5M |')
  # The last value up to each frame count, within 1% after it (the greedy
  # point at 5.002M counts for 5M) or 5% before it (training at 2.4M counts
  # for 2.5M, and 2.48M for the stopped run); the greedy evaluation at 2M is
  # not "at 2.5M", and nothing is past a run's end.
  assert table[2] == '| fast | -15.0 | +3.0 | - | +9.0 |'
  assert table[3] == '| paper | -20.5 | - | - | - |'
  with open(paths['csv']) as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 4 + 2 + 2
  first = rows[0]
  assert (first['run'], first['frames'], first['agent_steps'], first['kind'],
          float(first['return'])) == ('fast', '1000000', '250000',
                                      'training', -20.)
  assert {r['kind'] for r in rows} == {'training', 'greedy'}
  assert os.path.getsize(paths['png']) > 10_000


def test_a_run_without_episode_returns_is_refused(tmp_path):
  writer = tf.summary.create_file_writer(str(tmp_path))
  with writer.as_default():
    tf.summary.scalar('learner/total_loss', 1., step=1)
  writer.flush()
  with pytest.raises(ValueError, match='episode_return'):
    learning_curves.compare([str(tmp_path)], str(tmp_path / 'out'))


def test_agent_steps_follow_the_runs_own_frames_per_step(tmp_path):
  # A CartPole run counts one frame per agent step (learner/agent_steps).
  logdir = str(tmp_path / 'cartpole')
  _write_run(logdir, [(1000, 20.), (2000, 60.)])
  writer = tf.summary.create_file_writer(logdir)
  with writer.as_default():
    for frames in (1000, 2000):
      tf.summary.scalar('learner/agent_steps', frames, step=frames)
  writer.flush()
  paths = learning_curves.compare([logdir], str(tmp_path / 'out'))
  with open(paths['csv']) as f:
    rows = list(csv.DictReader(f))
  assert [(r['frames'], r['agent_steps']) for r in rows] == [
      ('1000', '1000'), ('2000', '2000')]
