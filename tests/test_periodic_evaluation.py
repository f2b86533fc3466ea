"""Tests of the evaluator that plays checkpoints during training."""

import os

import gymnasium
import numpy as np
import pytest
import tensorflow as tf

from scalable_agent import networks
from scalable_agent import periodic_evaluation
from scalable_agent import suites
from scalable_agent import report


def _save_checkpoint(logdir, agent, frames):
  """A checkpoint laid out as training.TrainingLoop writes them."""
  checkpoint = tf.train.Checkpoint(
      agent=agent, num_env_frames=tf.Variable(frames, dtype=tf.int64))
  manager = tf.train.CheckpointManager(
      checkpoint, os.path.join(logdir, 'checkpoints'), max_to_keep=3)
  return manager.save()


def _greedy_returns_by_hand(agent, seed, episodes):
  """CartPole played with argmax of the agent's logits, one env at a time,
  env i reset with seed + i (the evaluation batch's seeding)."""
  returns = []
  for i in range(episodes):
    env = gymnasium.make('CartPole-v1')
    observation, _ = env.reset(seed=seed + i)
    total, done = 0., False
    while not done:
      logits = agent._policy_logits(agent._torso(observation[None]))
      action = int(np.argmax(logits.numpy()[0]))
      observation, reward, terminated, truncated, _ = env.step(action)
      total += reward
      done = terminated or truncated
    returns.append(total)
  return returns


def test_evaluates_due_checkpoints_greedy_and_sampled(tmp_path):
  logdir = str(tmp_path)
  config = suites.resolve('CartPole-v1')
  tf.random.set_seed(3)
  agent = config.suite.make_agent(2)
  agent.step(tf.zeros([1], tf.int32),
             config.suite.make_environment(config, 1).reset(), ())
  evaluator = periodic_evaluation.Evaluator(
      'CartPole-v1', logdir, every_frames=1000, episodes=3, seed=5)
  assert evaluator.evaluate_if_due() is None  # No checkpoint yet.
  _save_checkpoint(logdir, agent, 999)
  assert evaluator.evaluate_if_due() is None  # Not due yet.

  _save_checkpoint(logdir, agent, 2500)
  frames, greedy, sampled = evaluator.evaluate_if_due()
  assert frames == 2500
  assert evaluator.next_due == 3000  # The next multiple of every_frames.
  assert greedy == pytest.approx(
      np.mean(_greedy_returns_by_hand(agent, seed=5, episodes=3)))
  assert sampled >= 8  # A CartPole episode lasts at least 8 steps.
  assert evaluator.evaluate_if_due() is None  # Same checkpoint: not due.

  scalars = report.read_scalars(os.path.join(logdir, 'evaluation'))
  assert list(scalars['evaluation/greedy_return'].steps) == [2500]
  np.testing.assert_allclose(scalars['evaluation/greedy_return'].values,
                             [greedy])
  np.testing.assert_allclose(scalars['evaluation/sampled_return'].values,
                             [sampled])


def test_suites_and_bad_settings_are_refused(tmp_path):
  with pytest.raises(ValueError, match='scalable_agent.evaluate'):
    periodic_evaluation.Evaluator('atari57', str(tmp_path), 1000)
  with pytest.raises(ValueError, match='positive'):
    periodic_evaluation.Evaluator('CartPole-v1', str(tmp_path), 0)


def test_a_checkpoint_of_another_model_is_an_error_not_a_silence(tmp_path):
  # An evaluator started with the wrong --torso used to return None for
  # ever; only a checkpoint deleted under it should be skipped quietly.
  logdir = str(tmp_path)
  config = suites.resolve('CartPole-v1')
  # Another network than the evaluator's (its MLP has 64-64 hidden units).
  other = networks.ImpalaAgent(2, networks.MLPTorso(hidden_sizes=(32,)),
                               use_lstm=False)
  other.step(tf.zeros([1], tf.int32),
             config.suite.make_environment(config, 1).reset(), ())
  _save_checkpoint(logdir, other, 2000)
  evaluator = periodic_evaluation.Evaluator(
      'CartPole-v1', logdir, every_frames=1000, episodes=1)
  with pytest.raises(ValueError, match='does not fit'):
    evaluator.evaluate_if_due()
