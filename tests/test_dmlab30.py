"""Tests of the DMLab-30 suite: level table, DeepMind Lab adapter, batches.

The adapter runs against a stand-in `deepmind_lab` module
(tests/deepmind_lab_standin/deepmind_lab.py) that follows the real module's
API and errors; each test gets a fresh copy installed as
`sys.modules['deepmind_lab']`, which is exactly where the adapter's lazy
`import deepmind_lab` looks first.
"""

import ast
import os
import pathlib
import sys

import gymnasium
import numpy as np
import pytest

import dmlab30
from dmlab30 import environment
from dmlab30 import installation
from scalable_agent import networks


# The 9 actions exactly as the reference lists them.
_REFERENCE_ACTIONS = [
    (0, 0, 0, 1, 0, 0, 0),    # Forward.
    (0, 0, 0, -1, 0, 0, 0),   # Backward.
    (0, 0, -1, 0, 0, 0, 0),   # Strafe left.
    (0, 0, 1, 0, 0, 0, 0),    # Strafe right.
    (-20, 0, 0, 0, 0, 0, 0),  # Look left.
    (20, 0, 0, 0, 0, 0, 0),   # Look right.
    (-20, 0, 0, 1, 0, 0, 0),  # Look left + forward.
    (20, 0, 0, 1, 0, 0, 0),   # Look right + forward.
    (0, 0, 0, 0, 1, 0, 0),    # Fire.
]


# The `lab` fixture (the stand-in deepmind_lab) is in conftest.py.


def _expected_reward(action_index, frames):
  """The stand-in's reward: (MOVE_BACK_FORWARD + 0.5 * FIRE) per frame."""
  action = _REFERENCE_ACTIONS[action_index]
  return (action[3] + 0.5 * action[4]) * frames


# Level table.


def test_thirty_levels_and_names():
  assert len(dmlab30.LEVELS) == 30
  assert len(set(dmlab30.LEVEL_NAMES)) == 30
  assert len(set(dmlab30.TEST_LEVEL_NAMES)) == 30
  assert dmlab30.LEVEL_NAMES == tuple(l.train_name for l in dmlab30.LEVELS)
  renamed = {k: v for k, v in dmlab30.TRAIN_TO_TEST.items() if k != v}
  assert renamed == {
      'rooms_collect_good_objects_train': 'rooms_collect_good_objects_test',
      'rooms_exploit_deferred_effects_train':
          'rooms_exploit_deferred_effects_test',
  }
  assert dmlab30.HOLD_OUT_LEVELS == set(renamed.values())
  assert dmlab30.LEVELS[0].train_name == 'rooms_collect_good_objects_train'
  assert dmlab30.LEVELS[-1].test_name == 'explore_object_rewards_many'
  level = dmlab30.get_level('rooms_watermaze')
  assert level == dmlab30.Level('rooms_watermaze', 'rooms_watermaze', 54.,
                                4.065, 26.9, 31.1)


def test_table_matches_reference_csv(reference_table):
  rows = reference_table('dmlab30_scores.csv')
  assert [(r['train_level'], r['test_level'], float(r['human']),
           float(r['random'])) for r in rows] == [
               (l.train_name, l.test_name, l.human, l.random)
               for l in dmlab30.LEVELS]


def test_action_set_is_the_reference_one():
  assert dmlab30.ACTION_SET.dtype == np.intc
  assert dmlab30.ACTION_SET.shape == (9, 7)
  np.testing.assert_array_equal(dmlab30.ACTION_SET, _REFERENCE_ACTIONS)
  assert dmlab30.NUM_ACTIONS == len(dmlab30.ACTION_NAMES) == 9
  # Rows go to the engine as they are: they must be C-contiguous.
  assert all(row.flags.c_contiguous for row in dmlab30.ACTION_SET)
  with pytest.raises(ValueError):
    dmlab30.ACTION_SET[0, 0] = 1  # Shared by all environments: read-only.


def test_get_level_accepts_train_test_and_prefixed_names():
  train = dmlab30.get_level('rooms_collect_good_objects_train')
  assert dmlab30.get_level('rooms_collect_good_objects_test') is train
  assert dmlab30.get_level(
      'contributed/dmlab30/rooms_collect_good_objects_train') is train
  assert dmlab30.level_index('rooms_collect_good_objects_test') == 0
  assert dmlab30.level_index('explore_object_rewards_many') == 29
  with pytest.raises(ValueError) as error:
    dmlab30.get_level('explore_goal_location_small')
  message = str(error.value)
  assert "'explore_goal_location_small'" in message
  assert 'explore_goal_locations_small' in message


# The stand-in is only worth testing against if it is as strict as the real
# module; these pin the parts of its contract the adapter relies on, and run
# against both (the real engine's run skips where it is not installed).


def test_standin_is_strict_like_the_real_module(any_lab):
  lab = any_lab
  level = 'contributed/dmlab30/explore_goal_locations_small'
  with pytest.raises(TypeError):
    lab.Lab(level, ('RGB_INTERLEAVED',))
  with pytest.raises(TypeError):
    lab.Lab(level, ['RGB_INTERLEAVED'], config={'width': 96})
  with pytest.raises(TypeError):
    lab.Lab(level, ['RGB_INTERLEAVED'], config=None)
  with pytest.raises(RuntimeError):
    lab.Lab(level, ['RGB_INTERLEAVED'], config={'width': '98'})
  with pytest.raises(ValueError, match='Unknown observation'):
    lab.Lab(level, ['RGB_NOPE'])  # (RGB_INTERLACED is a real alias.)
  with pytest.raises(RuntimeError):
    lab.Lab('explore_goal_locations_small', ['RGB_INTERLEAVED'])
  with pytest.raises(RuntimeError, match='allowHoldOutLevels'):
    lab.Lab('contributed/dmlab30/rooms_collect_good_objects_test', [])
  with pytest.raises(RuntimeError):
    lab.Lab(level, [], config={'someOption': '1'})

  env = lab.Lab(level, ['RGB_INTERLEAVED', 'INSTR'],
                config={'width': '96', 'height': '72'})
  assert not hasattr(env, 'fps')
  assert env.read_property('engine.fps') == '60'
  action = np.zeros([7], np.intc)
  with pytest.raises(RuntimeError):
    env.step(action)  # Before the first reset.
  with pytest.raises(RuntimeError):
    env.observations()
  with pytest.raises(ValueError, match='seed'):
    env.reset(seed=np.int64(3))
  env.reset(seed=3)
  with pytest.raises(ValueError):
    env.step(np.zeros([7], np.int64))
  if getattr(lab, 'IS_STANDIN', False):
    # Undefined for the real engine (it reads the array as contiguous); the
    # stand-in refuses it so that the adapter never relies on it.
    with pytest.raises(ValueError):
      env.step(np.zeros([14], np.intc)[::2])
  with pytest.raises(TypeError):
    env.step([0] * 7)
  observations = env.observations()
  assert observations['RGB_INTERLEAVED'].shape == (72, 96, 3)
  assert observations['RGB_INTERLEAVED'].dtype == np.uint8
  assert observations['INSTR'] == ''
  reward = env.step(np.array(_REFERENCE_ACTIONS[0], np.intc), num_steps=4)
  assert type(reward) is float
  if getattr(lab, 'IS_STANDIN', False):
    assert reward == 4.  # The stand-in's reward rule.
  env.close()

  psychlab = lab.Lab('contributed/dmlab30/psychlab_continuous_recognition',
                     ['RGB_INTERLEAVED'])
  with pytest.raises(RuntimeError, match='brady_konkle_oliva2008'):
    psychlab.reset(seed=1)  # Construction works; the first reset fails.
  psychlab.close()


# The adapter.


def test_module_does_not_import_deepmind_lab_at_top_level():
  tree = ast.parse(pathlib.Path(environment.__file__).read_text())
  for node in tree.body:
    if isinstance(node, ast.Import):
      assert 'deepmind_lab' not in [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
      assert node.module != 'deepmind_lab'


def test_missing_deepmind_lab_error_says_how_to_install(monkeypatch):
  # None in sys.modules makes `import deepmind_lab` fail as if not installed.
  monkeypatch.setitem(sys.modules, 'deepmind_lab', None)
  with pytest.raises(ImportError) as error:
    environment.DmLabEnv('explore_goal_locations_small')
  message = str(error.value)
  assert 'DeepMind Lab is not installed' in message
  assert 'BUILD_NOTES.md' in message
  assert '../shared/deepmind_lab' in message


def test_observations_and_engine_arguments(lab):
  env = environment.DmLabEnv('language_select_described_object')
  instance = lab.INSTANCES[-1]
  assert instance.level == (
      'contributed/dmlab30/language_select_described_object')
  assert instance.observation_names == ['RGB_INTERLEAVED', 'INSTR']
  assert instance.renderer == 'software'
  assert all(isinstance(k, str) and isinstance(v, str)
             for k, v in instance.config.items())
  assert instance.config['width'] == '96'
  assert instance.config['height'] == '72'
  for key in ('allowHoldOutLevels', 'mixerSeed', 'datasetPath'):
    assert key not in instance.config

  assert env.action_space == gymnasium.spaces.Discrete(9)
  (frame, instruction), info = env.reset(seed=7)
  assert frame.shape == (72, 96, 3) and frame.dtype == np.uint8
  assert instruction.shape == (16,) and instruction.dtype == np.int32
  assert env.observation_space.contains((frame, instruction))
  # The instruction reaches the agent as hashed word ids.
  text = instance.observations()['INSTR']
  assert text.startswith('Pick the ')
  np.testing.assert_array_equal(instruction, networks.hash_instruction(text))
  assert type(info['engine_seed']) is int
  env.close()
  env.close()  # Idempotent.
  assert not instance.is_running()


def test_passes_gymnasium_env_checker(lab):
  from gymnasium.utils import env_checker  # pylint: disable=g-import-not-at-top
  env = environment.DmLabEnv('language_select_located_object')
  env_checker.check_env(env, skip_render_check=True)
  env.close()


def test_every_action_reaches_the_engine_as_intc_with_repeat_4(lab):
  env = environment.DmLabEnv('rooms_watermaze')
  env.reset(seed=0)
  instance = lab.INSTANCES[-1]
  for index in range(9):
    _, reward, terminated, truncated, _ = env.step(index)
    engine_action, num_steps = instance.steps[-1]
    assert engine_action.dtype == np.intc and engine_action.shape == (7,)
    np.testing.assert_array_equal(engine_action, _REFERENCE_ACTIONS[index])
    assert num_steps == 4
    assert type(reward) is float
    assert reward == _expected_reward(index, 4)
    assert not terminated and not truncated
  with pytest.raises(ValueError):
    env.step(9)
  env.close()


def test_episode_end_terminates_and_reset_reseeds_with_python_ints(
    lab, monkeypatch):
  monkeypatch.setattr(lab, 'EPISODE_FRAMES', 10)  # 2.5 agent steps.
  env = environment.DmLabEnv('explore_goal_locations_small')
  instance = lab.INSTANCES[-1]
  _, info = env.reset(seed=123)
  seeds = [info['engine_seed']]
  for _ in range(4):
    rewards = []
    terminated = False
    while not terminated:
      _, reward, terminated, truncated, _ = env.step(0)  # Forward.
      assert not truncated
      rewards.append(reward)
    # The engine summed 4, 4, then the 2 frames that were left.
    assert rewards == [4., 4., 2.]
    assert not instance.is_running()
    with pytest.raises(RuntimeError, match='reset'):
      env.step(0)
    (frame, _), info = env.reset()
    assert frame[0, 0, 0] == 0  # First frame of the new episode.
    seeds.append(info['engine_seed'])
  assert instance.seeds == seeds
  assert all(type(seed) is int for seed in instance.seeds)
  assert len(set(seeds)) == len(seeds)  # A new seed every episode.
  assert all(0 <= seed < 2**31 for seed in seeds)
  env.close()

  # reset(seed=...) makes the sequence of episodes reproducible.
  again = environment.DmLabEnv('explore_goal_locations_small')
  again.reset(seed=123)
  for _ in range(4):
    again.reset()
  assert lab.INSTANCES[-1].seeds == seeds
  again.close()


def test_held_out_test_level_config(lab):
  env = environment.DmLabEnv('rooms_collect_good_objects_test')
  instance = lab.INSTANCES[-1]
  assert instance.level == 'contributed/dmlab30/rooms_collect_good_objects_test'
  assert instance.config['allowHoldOutLevels'] == 'true'
  env.reset(seed=0)
  env.close()
  train = environment.DmLabEnv('rooms_collect_good_objects_train')
  assert 'allowHoldOutLevels' not in lab.INSTANCES[-1].config
  train.close()


def test_psychlab_dataset_path(lab, tmp_path):
  # The engine reads 0001.png ... 2400.png; the first and the last are
  # checked before it starts.
  (tmp_path / '0001.png').write_bytes(b'')
  with pytest.raises(ValueError, match='has no 2400.png'):
    environment.DmLabEnv('psychlab_continuous_recognition',
                         dataset_path=str(tmp_path))
  (tmp_path / '2400.png').write_bytes(b'')
  env = environment.DmLabEnv('psychlab_continuous_recognition',
                             dataset_path=str(tmp_path))
  assert lab.INSTANCES[-1].config['datasetPath'] == str(tmp_path)
  env.reset(seed=0)
  env.step(8)
  env.close()
  with pytest.raises(ValueError, match='dataset_path') as error:
    environment.DmLabEnv('psychlab_arbitrary_visuomotor_mapping')
  assert isinstance(error.value, installation.LevelUnavailableError)
  assert 'Brady' in str(error.value)
  with pytest.raises(ValueError, match='not a directory'):
    environment.DmLabEnv('psychlab_arbitrary_visuomotor_mapping',
                         dataset_path=str(tmp_path / 'missing'))
  # Nothing was started for the refused ones.
  assert len(lab.INSTANCES) == 1
  # The engine's own synthetic images, for tests.
  env = environment.DmLabEnv('psychlab_arbitrary_visuomotor_mapping',
                             dataset_path='dummy')
  assert lab.INSTANCES[-1].config['datasetPath'] == 'dummy'
  env.close()
  # Psychlab levels with procedural stimuli run without the dataset.
  env = environment.DmLabEnv('psychlab_visual_search')
  assert 'datasetPath' not in lab.INSTANCES[-1].config
  env.reset(seed=0)
  env.close()


def test_level_cache_miss_then_hit(lab, tmp_path):
  cache_dir = tmp_path / 'cache'
  cache = environment.LevelCache(cache_dir)
  first = environment.DmLabEnv('explore_goal_locations_small',
                               level_cache=cache)
  first.reset(seed=5)
  writer = lab.INSTANCES[-1]
  assert (writer.compiles, writer.cache_hits) == (1, 0)
  cached = os.listdir(cache_dir)
  assert len(cached) == 1 and not cached[0].startswith('.')  # No temp file.

  # Another environment (say another actor) seeded the same way gets the
  # same map seed: loaded from the cache, not compiled.
  second = environment.DmLabEnv('explore_goal_locations_small',
                                level_cache=environment.LevelCache(cache_dir))
  second.reset(seed=5)
  reader = lab.INSTANCES[-1]
  assert (reader.compiles, reader.cache_hits) == (0, 1)
  # A new seed is a new map: one more compilation and cache file.
  second.reset()
  assert (reader.compiles, reader.cache_hits) == (1, 1)
  assert len(os.listdir(cache_dir)) == 2
  first.close()
  second.close()


def test_level_cache_protocol(tmp_path):
  cache = environment.LevelCache(tmp_path / 'cache')
  pk3 = tmp_path / 'map.pk3'
  out = tmp_path / 'out.pk3'
  assert not cache.fetch('abc', str(out))
  assert not out.exists()
  pk3.write_bytes(b'map bytes')
  cache.write('abc', str(pk3))
  assert cache.fetch('abc', str(out))
  assert out.read_bytes() == b'map bytes'
  pk3.write_bytes(b'other bytes')
  cache.write('abc', str(pk3))  # First writer wins; still a whole file.
  assert cache.fetch('abc', str(out)) and out.read_bytes() == b'map bytes'
  assert os.listdir(tmp_path / 'cache') == ['abc']
  with pytest.raises(ValueError):
    cache.fetch('../escape', str(out))


# Batches.


def test_batch_round_robin_over_global_index(lab):
  levels = ['explore_goal_locations_small', 'rooms_collect_good_objects_train',
            'language_select_described_object']
  batch = environment.make_batched_environment(
      levels, num_envs=4, seed=10, first_env_index=2)
  assert batch.num_envs == 4 and batch.num_actions == 9
  expected = [levels[(2 + i) % 3] for i in range(4)]
  assert [i.level for i in lab.INSTANCES] == [
      'contributed/dmlab30/' + name for name in expected]
  np.testing.assert_array_equal(
      batch.level_ids, [dmlab30.level_index(name) for name in expected])
  assert batch.level_ids.dtype == np.int32

  output = batch.reset()
  frames, instructions = output.observation
  assert frames.shape == (4, 72, 96, 3) and frames.dtype == np.uint8
  assert instructions.shape == (4, 16) and instructions.dtype == np.int32
  # Global index g is seeded seed + g: distinct engine seeds per environment.
  seeds = [instance.seeds[0] for instance in lab.INSTANCES]
  assert len(set(seeds)) == 4
  batch.close()
  assert not any(instance.is_running() for instance in lab.INSTANCES)


def test_batch_evaluation_plays_test_levels(lab):
  batch = environment.make_batched_environment(
      ['rooms_collect_good_objects_train', 'rooms_watermaze'], num_envs=2,
      training=False)
  held_out, watermaze = lab.INSTANCES
  assert held_out.level == 'contributed/dmlab30/rooms_collect_good_objects_test'
  assert held_out.config['allowHoldOutLevels'] == 'true'
  assert held_out.config['mixerSeed'] == str(0x600D5EED)
  assert watermaze.config['mixerSeed'] == str(0x600D5EED)
  np.testing.assert_array_equal(batch.level_ids, [0, 3])
  batch.reset()
  batch.close()


def test_table2_level_outside_dmlab30(lab):
  # seekavoid_arena_01, Table 2's fifth task, is a DeepMind Lab level of its
  # own (no contributed/dmlab30/ prefix, no human/random scores): level id
  # 30, after the 30.
  from scalable_agent import suites  # pylint: disable=g-import-not-at-top
  config = suites.resolve('seekavoid_arena_01')
  assert config.suite.name == 'dmlab30'
  assert config.levels == ('seekavoid_arena_01',)
  assert config.suite.level_names(config)[30] == 'seekavoid_arena_01'
  with pytest.raises(ValueError, match='no human or random reference'):
    config.suite.reference_name('seekavoid_arena_01')
  batch = environment.make_batched_environment(
      ['seekavoid_arena_01', 'rooms_watermaze'], num_envs=2)
  seekavoid, _ = lab.INSTANCES
  assert seekavoid.level == 'seekavoid_arena_01'
  np.testing.assert_array_equal(batch.level_ids, [30, 3])
  batch.reset()
  batch.close()
  with pytest.raises(ValueError, match="Did you mean 'seekavoid_arena_01'"):
    dmlab30.levels.level_id('seekavoid_arena_1')


def test_batch_resets_finished_episodes_on_the_same_step(lab, monkeypatch):
  monkeypatch.setattr(lab, 'EPISODE_FRAMES', 8)  # 2 agent steps.
  batch = environment.make_batched_environment(
      ['rooms_watermaze', 'natlab_fixed_large_map'], num_envs=2)
  output = batch.reset()
  assert not output.done.any()
  output = batch.step(np.array([0, 8]))  # Forward, fire.
  assert not output.done.any()
  np.testing.assert_array_equal(output.reward, [4., 2.])
  output = batch.step(np.array([1, 0]))  # Backward, forward: episode ends.
  np.testing.assert_array_equal(output.done, [True, True])
  np.testing.assert_array_equal(output.reward, [-4., 4.])
  np.testing.assert_array_equal(output.info.episode_return, [0., 6.])
  np.testing.assert_array_equal(output.info.episode_step, [2, 2])
  frames, _ = output.observation
  # Already the first frame (frame number 0) of the next episode (new seed).
  np.testing.assert_array_equal(frames[:, 0, 0, 0], [0, 0])
  for i, instance in enumerate(lab.INSTANCES):
    assert len(instance.seeds) == 2 and instance.seeds[0] != instance.seeds[1]
    assert frames[i, 0, 0, 1] == instance.seeds[1] % 256
  output = batch.step(np.array([0, 0]))
  assert not output.done.any()
  np.testing.assert_array_equal(output.info.episode_step, [1, 1])
  batch.close()


def test_batch_checks_dataset_before_starting_engines(lab):
  with pytest.raises(ValueError, match='psychlab_continuous_recognition'):
    environment.make_batched_environment(dmlab30.LEVEL_NAMES, num_envs=30)
  assert lab.INSTANCES == []
  with pytest.raises(ValueError, match='not a DMLab-30 level'):
    environment.make_batched_environment(['rooms_watermaz'], num_envs=1)


def test_batch_closes_started_engines_when_one_fails(lab, monkeypatch):
  original = lab.Lab

  def failing_lab(level, *args, **kwargs):
    if level.endswith('natlab_fixed_large_map'):
      raise RuntimeError('Failed to init environment')
    return original(level, *args, **kwargs)

  monkeypatch.setattr(lab, 'Lab', failing_lab)
  with pytest.raises(RuntimeError):
    environment.make_batched_environment(
        ['rooms_watermaze', 'natlab_fixed_large_map'], num_envs=2)
  assert len(lab.INSTANCES) == 1 and not lab.INSTANCES[0].is_running()
  with pytest.raises(RuntimeError, match='closed'):
    lab.INSTANCES[0].reset(seed=0)


# Levels that cannot run on this installation.


def test_dmlab30_refuses_unavailable_levels_unless_told_to_skip_them(lab):
  from scalable_agent import main  # pylint: disable=g-import-not-at-top
  del lab
  # Without --dataset_path the two psychlab dataset levels cannot run (on the
  # real engine the natlab levels without their maps join them).
  with pytest.raises(SystemExit) as error:
    main._resolve_level(main.parse_args(['--level=dmlab30']))  # pylint: disable=protected-access
  message = str(error.value)
  for level in dmlab30.PSYCHLAB_DATASET_LEVELS:
    assert level in message
  assert '--skip_unavailable_levels' in message
  config = main._resolve_level(main.parse_args(  # pylint: disable=protected-access
      ['--level=dmlab30', '--skip_unavailable_levels']))
  assert not set(config.levels) & dmlab30.PSYCHLAB_DATASET_LEVELS
  assert list(config.levels) == [
      l for l in dmlab30.LEVEL_NAMES if l not in dmlab30.PSYCHLAB_DATASET_LEVELS
      and not installation.missing_maps(l)]
  # Level ids keep their meaning: the suite's table of 31, not the subset.
  assert config.suite.level_names(config)[3] == 'rooms_watermaze'
  # One level that cannot run is refused even with the flag.
  with pytest.raises(SystemExit, match='no level can run'):
    main._resolve_level(main.parse_args(  # pylint: disable=protected-access
        ['--level=psychlab_continuous_recognition',
         '--skip_unavailable_levels']))


def test_installation_check_reads_the_maps_of_an_engine_directory(tmp_path):
  maps = tmp_path / 'baselab' / 'maps'
  maps.mkdir(parents=True)
  for name in installation.NATLAB_MAPS['natlab_fixed_large_map'][:2]:
    (maps / f'{name}.bsp').write_bytes(b'')
  assert installation.missing_maps(
      'natlab_fixed_large_map', str(tmp_path)) == ['natlab_forage_ltm_night']
  problem = installation.level_problem('contributed/dmlab30/'
                                       'natlab_fixed_large_map',
                                       engine_dir=str(tmp_path))
  assert '1 of its 3 maps' in problem and 'natlab_forage_ltm_night' in problem
  (maps / 'natlab_forage_ltm_night.bsp').write_bytes(b'')
  assert installation.level_problem('natlab_fixed_large_map',
                                    engine_dir=str(tmp_path)) is None
  # 100 maps each for the varying-map levels, as their scripts list them.
  assert len(installation.NATLAB_MAPS['natlab_varying_map_regrowth']) == 100
  assert installation.NATLAB_MAPS['natlab_varying_map_randomized'][-1] == (
      'natlab_forage_variable_099')
  # No baselab/maps (not a built package): nothing to check.
  assert installation.missing_maps('natlab_fixed_large_map',
                                   str(tmp_path / 'baselab')) == []
  assert installation.level_problem('rooms_watermaze',
                                    engine_dir=str(tmp_path)) is None


def test_training_statistics_of_a_run_that_skipped_levels():
  # A dmlab30 run with --skip_unavailable_levels trains on fewer than 30
  # levels: per-level scores, but no suite headline (it needs all 30), and
  # no error once every trained level has finished an episode.
  from scalable_agent import suites  # pylint: disable=g-import-not-at-top
  from scalable_agent import training  # pylint: disable=g-import-not-at-top
  config = suites.resolve('dmlab30')
  names = config.suite.level_names(config)
  trained = [i for i, n in enumerate(dmlab30.LEVEL_NAMES)
             if not n.startswith('natlab_')]
  statistics = training.Statistics(names, config.suite,
                                   num_trained_levels=len(trained))
  statistics.add_episodes([(i, 1., 100) for i in trained])
  scores, headline = statistics.human_normalized()
  assert len(scores) == 27 and headline is None
  watermaze = dmlab30.get_level('rooms_watermaze')
  assert scores['rooms_watermaze'] == pytest.approx(
      100 * (1. - watermaze.random) / (watermaze.human - watermaze.random))
  # All 30: the headline, the mean of the capped scores.
  statistics = training.Statistics(names, config.suite, num_trained_levels=30)
  statistics.add_episodes([(i, 1., 100) for i in range(30)])
  scores, headline = statistics.human_normalized()
  assert headline == pytest.approx(np.mean([min(s, 100.)
                                            for s in scores.values()]))
