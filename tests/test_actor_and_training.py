"""Actors' unroll layout, the unroll queue, the training loop and checkpoints."""

import glob
import logging
import os
import threading

import numpy as np
import pytest
import tensorflow as tf

from scalable_agent import actor as actor_lib
from scalable_agent import environments
from scalable_agent import learner as learner_lib
from scalable_agent import networks
from scalable_agent import training
from scalable_agent import transport


class EchoEnv:
  """A BatchedEnvironment whose reward is the action just taken.

  Episodes of environment i last i + 2 steps, so episode ends are known.
  Observations count steps: [N, 3] float32 of (env index, step, 1).
  """

  def __init__(self, num_envs, num_actions=3):
    self.num_envs = num_envs
    self.num_actions = num_actions
    self.level_ids = np.arange(num_envs, dtype=np.int32) % 2
    self._t = np.zeros([num_envs], np.int32)
    self._tracker = environments.EpisodeTracker(num_envs)

  def _obs(self):
    return np.stack([np.arange(self.num_envs), self._t,
                     np.ones(self.num_envs)], axis=1).astype(np.float32)

  def reset(self):
    self._t[:] = 0
    return environments.EnvOutput(np.zeros([self.num_envs], np.float32),
                                  self._tracker.reset(),
                                  np.zeros([self.num_envs], bool), self._obs())

  def step(self, actions):
    reward = np.asarray(actions, np.float32)
    self._t += 1
    done = self._t >= np.arange(self.num_envs) + 2
    info = self._tracker.update(reward, done)
    self._t[done] = 0
    return environments.EnvOutput(reward, info, done, self._obs())

  def close(self):
    pass


def make_actor(num_envs=3, unroll_length=5, use_lstm=True):
  env = EchoEnv(num_envs)
  agent = networks.ImpalaAgent(env.num_actions, networks.MLPTorso(),
                               use_lstm=use_lstm, core_size=8)
  return actor_lib.Actor(agent, env, unroll_length)


def test_unroll_layout_matches_the_reference():
  actor = make_actor()
  first = actor.unroll()
  second = actor.unroll()
  n, t1 = 3, 6
  assert first.env_outputs.reward.shape == (n, t1)
  assert first.agent_outputs.policy_logits.shape == (n, t1, 3)
  assert first.agent_state.hidden.shape == (n, 8)
  # Step 0 of an unroll repeats the last step of the previous one.
  for a, b in zip(tf.nest.flatten(first.env_outputs),
                  tf.nest.flatten(second.env_outputs)):
    np.testing.assert_array_equal(a[:, -1], b[:, 0])
  for a, b in zip(tf.nest.flatten(first.agent_outputs),
                  tf.nest.flatten(second.agent_outputs)):
    np.testing.assert_array_equal(a[:, -1], b[:, 0])
  # env_outputs[t] is what the environment returned for agent_outputs[t].
  np.testing.assert_array_equal(first.env_outputs.reward[:, 1:],
                                first.agent_outputs.action[:, 1:])
  # The first observation starts an episode.
  assert first.env_outputs.done[:, 0].all()
  # The unroll matches the specs the learner and transport use.
  for value, spec in zip(tf.nest.flatten(first), tf.nest.flatten(actor.specs)):
    assert value.shape[1:] == tuple(spec.shape)
    assert tf.as_dtype(value.dtype) == spec.dtype


def test_agent_state_is_the_state_the_learner_starts_from():
  actor = make_actor()
  actor.unroll()
  second = actor.unroll()
  # Replaying the unroll through the agent from its agent_state reproduces
  # the behaviour logits of steps 1..T.
  batch = learner_lib.to_time_major(tf.nest.map_structure(tf.constant, second))
  outputs, _ = actor.agent.unroll(batch.agent_outputs.action,
                                  batch.env_outputs, batch.agent_state)
  np.testing.assert_allclose(outputs.policy_logits[:-1],
                             batch.agent_outputs.policy_logits[1:],
                             rtol=1e-5, atol=1e-6)


def test_episode_statistics_counts_each_episode_once():
  actor = make_actor(num_envs=2, unroll_length=4)
  episodes = []
  rewards = [[], []]
  for _ in range(3):
    unroll = actor.unroll()
    episodes += actor_lib.episode_statistics(unroll)
    for i in range(2):
      rewards[i] += list(unroll.env_outputs.reward[i, 1:])
  # 12 steps: env 0 ends every 2 steps (6 episodes), env 1 every 3 (4).
  assert sorted(e[0] for e in episodes) == [0] * 6 + [1] * 4
  env0 = [r for level, r, _ in episodes if level == 0]
  np.testing.assert_allclose(env0, np.reshape(rewards[0], [6, 2]).sum(1))
  assert {length for level, _, length in episodes if level == 1} == {3}


def test_unroll_queue_rejects_bad_unrolls_and_keeps_working():
  actor = make_actor()
  queue = transport.UnrollQueue(actor.specs, capacity=8)
  unroll = actor.unroll()
  bad_dtype = unroll._replace(env_outputs=unroll.env_outputs._replace(
      reward=unroll.env_outputs.reward.astype(np.float64)))
  with pytest.raises(ValueError, match='float64.*learner expects'):
    queue.enqueue(bad_dtype)
  bad_shape = tf.nest.map_structure(lambda x: x[:, :3] if x.ndim > 1 else x,
                                    unroll)
  with pytest.raises(ValueError, match='same level, torso and unroll length'):
    queue.enqueue(bad_shape)
  assert queue.queue_size() == 0
  queue.enqueue(unroll)
  assert queue.queue_size() == 3
  batch = next(iter(queue.dataset(2)))
  np.testing.assert_array_equal(batch.env_outputs.reward,
                                unroll.env_outputs.reward[:2])


def test_full_queue_blocks_until_the_learner_dequeues():
  actor = make_actor(num_envs=2)
  queue = transport.UnrollQueue(actor.specs, capacity=2)
  queue.enqueue(actor.unroll())  # Full.
  done = threading.Event()

  def enqueue_more():
    queue.enqueue(actor.unroll())
    done.set()

  thread = threading.Thread(target=enqueue_more, daemon=True)
  thread.start()
  assert not done.wait(1.0)  # Blocked: backpressure, nothing dropped.
  next(iter(queue.dataset(2)))
  assert done.wait(10.0)  # The learner made room; the actor went on.


HP = learner_lib.Hyperparameters(
    batch_size=4, unroll_length=5, num_action_repeats=1,
    total_environment_frames=1e9, learning_rate=0.01, epsilon=0.01)


def make_loop(logdir, max_frames=1e9):
  actor = make_actor(num_envs=4, unroll_length=HP.unroll_length)
  hp = learner_lib.dataclasses.replace(HP, total_environment_frames=max_frames)
  agent = networks.ImpalaAgent(3, networks.MLPTorso(), use_lstm=True,
                               core_size=8)
  learner = learner_lib.Learner(agent, actor.specs, hp)
  queue = transport.UnrollQueue(actor.specs, capacity=8)
  endpoint = training.LearnerEndpoint(agent.trainable_variables, queue)
  loop = training.TrainingLoop(learner, queue, endpoint, logdir,
                               ['level_a', 'level_b'], log_every_s=0.)
  return loop, actor, _console_lines('learner')


class _Lines(logging.Handler):
  def __init__(self):
    super().__init__()
    self.lines = []

  def emit(self, record):
    self.lines.append(record.getMessage())


def _console_lines(logger_name):
  """A list that fills with the messages the logger emits."""
  logger = logging.getLogger(logger_name)
  logger.setLevel(logging.INFO)
  for handler in list(logger.handlers):
    if isinstance(handler, _Lines):
      logger.removeHandler(handler)
  handler = _Lines()
  logger.addHandler(handler)
  return handler.lines


def _feed(loop, actor, stop):
  connection = actor_lib.InProcessConnection(loop.endpoint)
  try:
    actor_lib.run_actor(actor, connection, should_stop=stop.is_set)
  except (tf.errors.CancelledError, tf.errors.OutOfRangeError):
    pass


def test_training_loop_trains_reports_and_stops_at_the_frame_budget(tmp_path):
  loop, actor, lines = make_loop(str(tmp_path), max_frames=10 * 4 * 5)
  stop = threading.Event()
  thread = threading.Thread(target=_feed, args=(loop, actor, stop),
                            daemon=True)
  thread.start()
  steps = loop.run()
  stop.set()
  loop.queue.close()
  assert steps == 10
  assert int(loop.learner.num_env_frames) == 200
  # Actors followed the published parameters.
  assert actor.policy_version > 0
  assert lines and 'frames' in lines[-1] and 'fps' in lines[-1]
  # A checkpoint at the end, and TensorBoard events.
  assert loop.manager.latest_checkpoint.endswith('-10')
  assert glob.glob(os.path.join(str(tmp_path), 'events.out.tfevents.*'))


def test_resume_from_checkpoint_and_corrupt_checkpoint_error(tmp_path):
  loop, actor, _ = make_loop(str(tmp_path))
  stop = threading.Event()
  thread = threading.Thread(target=_feed, args=(loop, actor, stop),
                            daemon=True)
  thread.start()
  loop.run(max_steps=3)
  stop.set()
  loop.queue.close()
  saved = [v.numpy() for v in loop.learner.agent.trainable_variables]
  saved_slots = [v.numpy() for v in loop.learner.optimizer.mean_squares]

  resumed, _, _ = make_loop(str(tmp_path))
  assert resumed.restore().endswith('-3')
  assert int(resumed.step_counter) == 3
  assert int(resumed.learner.num_env_frames) == 3 * 4 * 5
  for a, b in zip(saved, resumed.learner.agent.trainable_variables):
    np.testing.assert_array_equal(a, b.numpy())
  for a, b in zip(saved_slots, resumed.learner.optimizer.mean_squares):
    np.testing.assert_array_equal(a, b.numpy())
  # Actors of the restarted learner get the restored parameters' version.
  assert resumed.endpoint.parameters_version() == 3

  # A damaged newest checkpoint (issue 10, defect 5): the older one is
  # used, saying so, even without TensorFlow's `checkpoint` state file.
  resumed.step_counter.assign(7)
  resumed.save()
  for path in glob.glob(os.path.join(str(tmp_path), 'checkpoints',
                                     'ckpt-7.data-*')):
    with open(path, 'r+b') as f:
      f.truncate(16)
  os.remove(os.path.join(str(tmp_path), 'checkpoints', 'checkpoint'))
  fallback, _, lines = make_loop(str(tmp_path))
  assert fallback.restore().endswith('-3')
  for a, b in zip(saved, fallback.learner.agent.trainable_variables):
    np.testing.assert_array_equal(a, b.numpy())
  assert any('skipping' in l and 'ckpt-7' in l for l in lines)
  assert int(fallback.step_counter) == 8  # Never numbered over ckpt-7.

  # Every checkpoint damaged: an error that says what to do.
  for path in glob.glob(os.path.join(str(tmp_path), 'checkpoints',
                                     'ckpt-3.data-*')):
    with open(path, 'r+b') as f:
      f.truncate(16)
  broken, _, _ = make_loop(str(tmp_path))
  with pytest.raises(ValueError, match='None of the 2 checkpoints.*Delete'):
    broken.restore()


def test_tunable_hyperparameters_are_checkpointed(tmp_path):
  # Population-based training changes them during a run: a member resumes
  # with the checkpoint's values, any other run with the command line's.
  loop, _, _ = make_loop(str(tmp_path))
  loop.learner.tunable.assign(learning_rate=0.123, entropy_cost=0.0042)
  loop.save()
  member, _, _ = make_loop(str(tmp_path))
  member.keep_restored_hyperparameters = True
  member.restore()
  assert member.learner.tunable.values()['learning_rate'] == pytest.approx(
      0.123)
  assert member.learner.tunable.values()['entropy_cost'] == pytest.approx(
      0.0042)
  plain, _, lines = make_loop(str(tmp_path))
  plain.restore()
  assert plain.learner.tunable.values()['learning_rate'] == pytest.approx(
      HP.learning_rate)
  assert any('command line' in l and 'learning_rate' in l for l in lines)


def test_no_checkpoint_is_written_with_non_finite_parameters(tmp_path):
  # Issue 10, defect 1: a poisoned model must not become the one a run
  # resumes from.
  loop, _, lines = make_loop(str(tmp_path))
  first = loop.save()
  assert first and first.endswith('-0')
  variable = loop.learner.agent.trainable_variables[0]
  variable.assign(tf.fill(variable.shape, np.nan))
  loop.step_counter.assign(5)
  assert loop.save() is None
  assert loop.manager.latest_checkpoint == first
  assert any('not checkpointing' in line for line in lines)


def test_failing_disk_writes_are_reported_and_training_goes_on(tmp_path,
                                                               monkeypatch):
  # Issue 10, defect 4: a failed TensorBoard or checkpoint write (a full
  # disk) ended the run, and then the final checkpoint failed too.
  loop, actor, lines = make_loop(str(tmp_path), max_frames=6 * 4 * 5)
  good = loop.save()
  disk_full = tf.errors.ResourceExhaustedError(None, None,
                                               'No space left on device')

  def fail(*unused_args, **unused_kwargs):
    raise disk_full

  monkeypatch.setattr(loop.manager, 'save', fail)
  monkeypatch.setattr(training.tf.summary, 'scalar', fail)
  stop = threading.Event()
  thread = threading.Thread(target=_feed, args=(loop, actor, stop),
                            daemon=True)
  thread.start()
  try:
    steps = loop.run()
  finally:
    stop.set()
    loop.queue.close()
  assert steps == 6  # The whole budget, despite the failures.
  assert any('checkpoint at step 6 failed' in l and 'No space' in l
             for l in lines)
  assert any('TensorBoard summaries' in l and 'training goes on' in l
             for l in lines)
  assert any(l.startswith('step 6 ') for l in lines)  # The console goes on.
  assert loop.manager.latest_checkpoint == good
  monkeypatch.undo()
  assert loop.save().endswith('-6')  # Space again: the next one is written.


def test_a_starved_learner_says_so(tmp_path):
  # Issue 10: the learner warns when no unroll has come for a while.
  actor = make_actor(num_envs=4, unroll_length=HP.unroll_length)
  agent = networks.ImpalaAgent(3, networks.MLPTorso(), use_lstm=True,
                               core_size=8)
  learner = learner_lib.Learner(agent, actor.specs, HP)
  queue = transport.UnrollQueue(actor.specs, capacity=8)
  endpoint = training.LearnerEndpoint(agent.trainable_variables, queue)
  loop = training.TrainingLoop(learner, queue, endpoint, str(tmp_path),
                               ['level_a'], starved_after_s=0.5)
  lines = _console_lines('learner')
  timer = threading.Timer(2.0, loop.stop)  # No actor ever feeds it.
  timer.start()
  try:
    assert loop.run() == 0
  finally:
    timer.cancel()
  warnings = [l for l in lines if l.startswith('no batch for')]
  assert warnings and 'queue 0/8' in warnings[0], lines
  assert 'in-process actors' in warnings[0]
