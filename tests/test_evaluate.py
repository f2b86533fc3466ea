"""Tests of evaluate.py and what it plays with: play.py (protocol, episode
counting), checkpoints.py (restoring), score_files.py (outputs), the worker
pool, and DMLab.

Atari runs are a few short episodes (a frame cap) of a fresh agent; the
DMLab-30 path runs against the stand-in `deepmind_lab` module
(tests/deepmind_lab_standin), whose episodes last 25 agent steps.
"""

import csv
import json
import os

import numpy as np
import pytest
import tensorflow as tf

import atari57
import dmlab30
from scalable_agent import checkpoints
from scalable_agent import environments
from scalable_agent import evaluate
from scalable_agent import networks
from scalable_agent import play
from scalable_agent import report_tables
from scalable_agent import score_files
from scalable_agent import scoring
from scalable_agent import suites



def _env_output(observation, batch_size):
  """EnvOutput of `batch_size` environments at the start of an episode."""
  return environments.EnvOutput(
      reward=np.zeros([batch_size], np.float32),
      info=environments.EpisodeTracker(batch_size).reset(),
      done=np.zeros([batch_size], bool), observation=observation)


def _observation_batch(config, num_actions, batch_size=3, seed=0):
  """A fixed EnvOutput batch of the suite's observations, [B] fields: random
  frames, empty instructions (word ids -1)."""
  del num_actions
  rng = np.random.RandomState(seed)

  def fill(spec):
    shape = [batch_size] + spec.shape.as_list()
    if spec.dtype == tf.uint8:
      return rng.randint(0, 256, shape).astype(np.uint8)
    return np.full(shape, -1, spec.dtype.as_numpy_dtype)

  observation = tf.nest.map_structure(
      fill, config.suite.observation_spec(config))
  return _env_output(observation, batch_size)


def _save_training_checkpoint(logdir, level='pong', torso=None,
                              num_actions=6):
  """A checkpoint laid out as training.py writes it; returns (agent, prefix)."""
  config = suites.resolve(level)
  agent = config.suite.make_agent(num_actions, torso)
  env_output = _observation_batch(config, num_actions)
  agent.step(np.zeros([3], np.int32), env_output, agent.initial_state(3))
  # Stand-ins for the learner's optimiser and counters: the evaluator must
  # read the agent and ignore the rest.
  optimizer = tf.Module()
  optimizer.slot = tf.Variable(tf.ones([7]))
  checkpoint = tf.train.Checkpoint(
      agent=agent, optimizer=optimizer,
      num_env_frames=tf.Variable(12345, dtype=tf.int64),
      step=tf.Variable(7, dtype=tf.int64))
  manager = tf.train.CheckpointManager(
      checkpoint, os.path.join(logdir, 'checkpoints'), max_to_keep=3)
  return agent, manager.save(checkpoint_number=7)


# Atari, end to end.


def test_atari_games_end_to_end_in_worker_processes(tmp_path):
  games = ['pong', 'breakout']
  result = evaluate.evaluate(
      'atari57', checkpoint='none', episodes=3, num_workers=2,
      envs_per_level=2, output_dir=str(tmp_path), max_episode_frames=200,
      only_levels=['ALE/Pong-v5', 'breakout'], progress=False,
      print_fn=None)

  assert result.suite == 'atari57'
  assert list(result.episodes) == sorted(games)  # Table order.
  for game in games:
    assert len(result.episodes[game]) == 3  # Finished episodes only.
    # The cap counts frames after the start no-ops; 4 frames per step.
    assert all(0 < length <= 50 for length in result.lengths[game])
    reference = atari57.get_game(game)
    expected = scoring.human_normalized_score(
        np.mean(result.episodes[game]), reference.random, reference.human)
    assert result.human_normalized[game] == pytest.approx(expected)
  assert result.suite_score is None  # 3 of 57 games: no median.
  assert result.paper_column == 'impala_deep_multitask'

  with open(tmp_path / 'scores.csv') as f:
    rows = list(csv.DictReader(f))
  assert [r['level'] for r in rows] == [g for g in sorted(games)
                                        for _ in range(3)]
  for row in rows:
    assert int(row['frames']) == 4 * int(row['length'])
  by_game = {g: [float(r['return']) for r in rows if r['level'] == g]
             for g in games}
  assert by_game == result.episodes

  data = json.loads((tmp_path / 'scores.json').read_text())
  assert data['suite'] == 'atari57'
  assert data['level'] == 'atari57'
  assert data['checkpoint'] is None
  assert data['max_episode_frames'] == 200
  assert 'SHORTENED' in data['protocol']
  assert data['episodes'] == result.episodes
  assert data['human_normalized'] == pytest.approx(result.human_normalized)
  assert data['headline'] is None

  # Seeds belong to levels, not workers: in this process, the same episodes.
  again = evaluate.evaluate(
      'atari57', checkpoint='none', episodes=3, num_workers=0,
      envs_per_level=2, max_episode_frames=200, only_levels=games,
      progress=False, print_fn=None)
  assert again.episodes == result.episodes


def test_suite_headline_is_scorings(capsys):
  config = suites.resolve('atari57')
  rng = np.random.RandomState(0)
  collected = {
      game: [play.Episode(game, float(r), 100)
             for r in rng.uniform(0, 2 * atari57.get_game(game).human, 2)]
      for game in config.levels}
  result = evaluate._summarise(config, 'atari57', list(config.levels), None,
                               None, collected, None, 1.)
  expected = scoring.suite_score('atari57', result.episodes)
  assert result.suite_score == expected
  assert result.human_normalized == pytest.approx(expected.per_level)
  assert score_files.result_to_json(result)['headline'] == expected.median
  print(evaluate.format_table(result))
  table = capsys.readouterr().out
  assert f'median human-normalised score: {expected.median:.1f}%' in table
  assert 'paper IMPALA deep multi-task: 59.7%' in table
  assert all(game in table for game in config.levels)


def test_sample_actions_follows_the_policy():
  rng = np.random.RandomState(0)
  logits = np.log(np.array([[0.7, 0.2, 0.1]] * 20000))
  actions = play.sample_actions(logits, rng)
  assert actions.dtype == np.int32
  np.testing.assert_allclose(np.bincount(actions) / 20000, [0.7, 0.2, 0.1],
                             atol=0.015)


def test_episode_quotas_are_fixed_per_environment():
  np.testing.assert_array_equal(play.episode_quotas(5, 2), [3, 2])
  np.testing.assert_array_equal(play.episode_quotas(2, 2), [1, 1])
  np.testing.assert_array_equal(play.episode_quotas(9, 4), [3, 2, 2, 2])


class _ScriptedBatch:
  """Two environments: env 0 ends an episode every step, env 1 every 5."""

  num_envs = 2
  num_actions = 3
  level_ids = np.zeros([2], np.int32)

  def reset(self):
    self._t = 0
    return _env_output(np.zeros([2, 4], np.float32), 2)

  def step(self, actions):
    del actions
    self._t += 1
    done = np.array([True, self._t % 5 == 0])
    out = _env_output(np.zeros([2, 4], np.float32), 2)
    info = out.info._replace(
        episode_return=np.array([1., 10.], np.float32),
        episode_step=np.array([1, 5], np.int32))
    if 'episode_end' in info._fields:
      info = info._replace(episode_end=done)
    return out._replace(done=done, info=info)

  def close(self):
    pass


class _RandomPolicy:

  def initial_state(self, batch_size):
    del batch_size
    return ()

  def step(self, prev_action, env_output, state):
    del env_output
    return (networks.AgentOutput(
        tf.zeros_like(prev_action), None, None), state)


def test_short_episodes_are_not_over_represented():
  # Env 0's short episodes finish 5 times as often; counting the first 4 to
  # finish would give 4 of them. Quotas take 2 from each environment.
  episodes = play.play_level(_RandomPolicy(), _ScriptedBatch(), 4, 'x',
                             lambda e: None)
  assert sorted(e.episode_return for e in episodes) == [1., 1., 10., 10.]


# The worker pool's errors.


def _fail_on_breakout(level):
  """A pool task (module level: spawned workers import it by name)."""
  if level == 'breakout':
    raise KeyError('no such ROM')
  return level.upper()


def _die(level):
  del level
  os._exit(3)  # As if killed from outside: no exception, no result.


def test_worker_errors_name_the_level_and_a_dead_worker_is_explained():
  results = {}
  with pytest.raises(RuntimeError,
                     match="failed on level 'breakout': KeyError"):
    evaluate._run_pool(_fail_on_breakout, ['pong', 'breakout'], 1,
                       results.__setitem__)
  assert results == {'pong': 'PONG'}  # Handed out in order, one at a time.
  with pytest.raises(RuntimeError,
                     match='worker process died.*fewer --num_workers'):
    evaluate._run_pool(_die, ['pong'], 1, results.__setitem__)


# Checkpoints.


def test_checkpoint_restores_the_trained_weights(tmp_path):
  agent, prefix = _save_training_checkpoint(str(tmp_path))
  config = suites.resolve('pong')
  env_output = _observation_batch(config, 6, seed=1)
  expected, _ = agent.step(np.zeros([3], np.int32), env_output, ())

  # The logdir, its checkpoints directory and the prefix all find it.
  for path in (str(tmp_path), str(tmp_path / 'checkpoints'), prefix):
    assert checkpoints.resolve(path) == prefix
  policy = play.Policy(config, 6, None, prefix, env_output)
  restored, _ = policy.agent.step(np.zeros([3], np.int32), env_output, ())
  np.testing.assert_allclose(restored.policy_logits, expected.policy_logits,
                             rtol=1e-6)
  np.testing.assert_allclose(restored.baseline, expected.baseline, rtol=1e-6)

  # A fresh agent differs (so the comparison above means something).
  fresh = play.Policy(config, 6, None, None, env_output)
  output, _ = fresh.agent.step(np.zeros([3], np.int32), env_output, ())
  assert not np.allclose(output.policy_logits, expected.policy_logits)

  # And the whole command runs from the logdir.
  code = evaluate.main([
      '--level=pong', f'--checkpoint={tmp_path}', '--episodes=1',
      '--num_workers=0', '--max_episode_frames=200', '--no_progress',
      f'--output={tmp_path / "eval"}'])
  assert code == 0
  data = json.loads((tmp_path / 'eval' / 'scores.json').read_text())
  assert data['checkpoint'] == prefix
  assert len(data['episodes']['pong']) == 1


def test_missing_checkpoint_is_a_clear_error(tmp_path):
  with pytest.raises(checkpoints.CheckpointError,
                     match="'none' for an untrained"):
    checkpoints.resolve(str(tmp_path / 'nowhere'))
  with pytest.raises(checkpoints.CheckpointError, match='No checkpoint found'):
    checkpoints.resolve(str(tmp_path))
  assert checkpoints.resolve('none') is None
  assert evaluate.main(['--level=pong', f'--checkpoint={tmp_path}',
                        '--num_workers=0']) == 2


@pytest.mark.parametrize('damage', ['truncate', 'garble'])
def test_corrupt_checkpoint_is_a_clear_error(tmp_path, damage):
  _, prefix = _save_training_checkpoint(str(tmp_path))
  data_file, = [p for p in os.listdir(tmp_path / 'checkpoints')
                if '.data-' in p]
  path = tmp_path / 'checkpoints' / data_file
  content = bytearray(path.read_bytes())
  if damage == 'truncate':
    content = content[:len(content) // 2]
  else:
    middle = len(content) // 2
    content[middle:middle + 64] = bytes(
        (b + 1) % 256 for b in content[middle:middle + 64])
  path.write_bytes(bytes(content))
  config = suites.resolve('pong')
  with pytest.raises(checkpoints.CheckpointError,
                     match='corrupt or incomplete.*another checkpoint'):
    play.Policy(config, 6, None, prefix, _observation_batch(config, 6))


def test_checkpoint_of_another_agent_is_a_clear_error(tmp_path):
  _, prefix = _save_training_checkpoint(str(tmp_path), torso='deep')
  config = suites.resolve('pong')
  env_output = _observation_batch(config, 6)
  with pytest.raises(checkpoints.CheckpointError,
                     match='--torso=shallow.*does not fit|pass the --level '
                     'and --torso'):
    play.Policy(config, 6, 'shallow', prefix, env_output)
  # Another action set: the multi-task agent has 18 actions.
  with pytest.raises(checkpoints.CheckpointError, match='18 actions'):
    play.Policy(suites.resolve('atari57'), 18, 'deep', prefix, env_output)
  # The right torso restores.
  play.Policy(config, 6, 'deep', prefix, env_output)


def test_bad_arguments():
  with pytest.raises(ValueError, match='not a level of --level=atari57'):
    evaluate.evaluate('atari57', episodes=1, only_levels=['rooms_watermaze'],
                      num_workers=0)
  with pytest.raises(ValueError, match='not supported for the dmlab30'):
    evaluate.evaluate('rooms_watermaze', episodes=1, max_episode_frames=100,
                      num_workers=0)
  with pytest.raises(ValueError, match='episodes must be'):
    evaluate.evaluate('pong', episodes=0)


# DMLab-30, against the stand-in.


# The `lab` fixture (the stand-in deepmind_lab) is in conftest.py.


def test_dmlab30_all_levels_on_test_levels(lab, tmp_path, capsys):
  dataset = tmp_path / 'brady_konkle_oliva2008'
  dataset.mkdir()
  for image in ('0001.png', '2400.png'):  # What is checked of it.
    (dataset / image).write_bytes(b'')
  result = evaluate.evaluate(
      'dmlab30', checkpoint='none', episodes=1, num_workers=0,
      output_dir=str(tmp_path / 'out'), dataset_path=str(dataset),
      level_cache_dir=str(tmp_path / 'cache'))

  # The progress bar (stderr) counts episodes and levels.
  captured = capsys.readouterr()
  assert '| 30/30 [' in captured.err and '30/30 levels]' in captured.err

  # Evaluated and reported on the test variants, held-out levels allowed,
  # with the evaluation mixer seed.
  assert list(result.episodes) == list(dmlab30.TEST_LEVEL_NAMES)
  engine_levels = [i.level for i in lab.INSTANCES]
  assert engine_levels == [dmlab30.LEVEL_PREFIX + n
                           for n in dmlab30.TEST_LEVEL_NAMES]
  for instance in lab.INSTANCES:
    assert instance.config['mixerSeed'] == str(
        evaluate_mixer_seed())
  held_out = [i for i in lab.INSTANCES
              if i.level.endswith('rooms_collect_good_objects_test')]
  assert held_out[0].config['allowHoldOutLevels'] == 'true'
  assert os.listdir(tmp_path / 'cache')  # Procedural levels used the cache.

  # The stand-in's episodes: 100 frames, 25 agent steps.
  assert all(r == [25] for r in result.lengths.values())
  expected = scoring.suite_score('dmlab30', result.episodes)
  assert result.suite_score == expected
  assert result.human_normalized == pytest.approx(expected.per_level)
  assert result.paper_column == 'impala_deep_pbt'
  data = json.loads((tmp_path / 'out' / 'scores.json').read_text())
  assert data['headline'] == pytest.approx(expected.mean_capped)
  assert data['suite'] == 'dmlab30'
  table = captured.out
  assert (f'DMLab-30 mean capped human-normalised score: '
          f'{expected.mean_capped:.1f}%') in table
  assert 'paper IMPALA (deep, PBT): 49.4%' in table


def evaluate_mixer_seed():
  from dmlab30 import environment  # pylint: disable=g-import-not-at-top
  return environment.EVALUATION_MIXER_SEED


def test_dmlab_worker_process_and_its_checkpoint_error(lab, tmp_path):
  # One spawned worker: it imports the stand-in (from sys.path), builds the
  # test level's environment and the agent, and its restore error reaches
  # the caller as a CheckpointError.
  del lab
  _, prefix = _save_training_checkpoint(str(tmp_path), 'rooms_watermaze',
                                        torso='shallow', num_actions=9)
  with pytest.raises(evaluate.CheckpointError,
                     match='--level=rooms_watermaze --torso=deep'):
    evaluate.evaluate('rooms_watermaze', checkpoint=str(tmp_path),
                      episodes=1, num_workers=1, progress=False,
                      print_fn=None)


def test_levels_that_cannot_run_are_marked_skipped_not_scored(lab, tmp_path):
  # Without --dataset_path a psychlab dataset level cannot run: it is left
  # out of the scores, named with the reason, and the report marks it.
  del lab
  result = evaluate.evaluate(
      'dmlab30', checkpoint='none', episodes=1, num_workers=0,
      only_levels=['rooms_watermaze', 'psychlab_continuous_recognition'],
      output_dir=str(tmp_path / 'out'), progress=False, print_fn=None)
  assert list(result.episodes) == ['rooms_watermaze']
  assert list(result.skipped) == ['psychlab_continuous_recognition']
  assert 'Brady' in result.skipped['psychlab_continuous_recognition']
  assert 'psychlab_continuous_recognition' not in result.human_normalized
  table = evaluate.format_table(result)
  assert 'psychlab_continuous_recognition' in table and 'skipped' in table
  data = json.loads((tmp_path / 'out' / 'scores.json').read_text())
  assert list(data['skipped']) == ['psychlab_continuous_recognition']
  loaded = score_files.load_score_file(str(tmp_path / 'out' / 'scores.json'))
  assert list(loaded.skipped) == ['psychlab_continuous_recognition']
  markdown = report_tables.markdown_table(
      report_tables.build_table(loaded.suite, [loaded]))
  row = [l for l in markdown.splitlines()
         if l.startswith('| psychlab_continuous_recognition ')]
  assert row and 'skipped' in row[0]
  assert 'n/a (1 of 30, 1 skipped)' in markdown
