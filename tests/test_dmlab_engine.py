"""The DMLab-30 suite on the real DeepMind Lab.

Every test here needs the engine (the `engine` fixture skips, saying how to
install it, where it is absent; `.ci/run` installs the wheel from
../shared/deepmind_lab). The contract tests that the stand-in must pass too
are in test_dmlab30.py (`any_lab`).
"""

import json
import os
import re
import subprocess
import sys

import gymnasium
import numpy as np
import pytest

import dmlab30
from dmlab30 import environment
from dmlab30 import installation
from scalable_agent import evaluate
from scalable_agent import networks
from scalable_agent import report
from scalable_agent import scoring

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Agent steps of a rooms_watermaze episode: 120 s at 60 frames/s, 4 per step.
_WATERMAZE_STEPS = 120 * 60 // 4


def test_observations_and_instructions_on_the_engine(engine):
  del engine
  env = environment.DmLabEnv('language_select_described_object')
  (frame, words), info = env.reset(seed=1)
  assert frame.shape == (72, 96, 3) and frame.dtype == np.uint8
  assert words.shape == (16,) and words.dtype == np.int32
  assert env.observation_space.contains((frame, words))
  text = env._lab.observations()['INSTR']  # pylint: disable=protected-access
  assert text and isinstance(text, str)
  np.testing.assert_array_equal(words, networks.hash_instruction(text))
  assert (words >= 0).sum() == len(text.split())
  assert type(info['engine_seed']) is int
  assert frame.std() > 0  # A rendered image, not a blank buffer.
  env.close()

  env = environment.DmLabEnv('rooms_watermaze')
  (_, words), _ = env.reset(seed=1)
  np.testing.assert_array_equal(words, -1)  # No language on this level.
  env.close()


def test_passes_gymnasium_env_checker_on_the_engine(engine):
  del engine
  from gymnasium.utils import env_checker  # pylint: disable=g-import-not-at-top
  env = environment.DmLabEnv('rooms_watermaze')
  env_checker.check_env(env, skip_render_check=True)
  env.close()


def test_episode_end_and_seeds_on_the_engine(engine):
  del engine
  env = environment.DmLabEnv('rooms_watermaze')
  (first_frame, _), info = env.reset(seed=7)
  seed = info['engine_seed']
  steps, terminated = 0, False
  while not terminated and steps < 2 * _WATERMAZE_STEPS:
    _, reward, terminated, truncated, _ = env.step(0)  # Forward.
    assert type(reward) is float and not truncated
    steps += 1
  # The level's 120 s time limit ends the episode; the adapter says so.
  assert terminated and steps == _WATERMAZE_STEPS
  with pytest.raises(RuntimeError, match='reset'):
    env.step(0)
  _, info = env.reset()
  assert info['engine_seed'] != seed
  env.close()

  # The same environment seed replays the same episodes, frame for frame.
  again = environment.DmLabEnv('rooms_watermaze')
  (frame, _), info = again.reset(seed=7)
  assert info['engine_seed'] == seed
  np.testing.assert_array_equal(frame, first_frame)
  again.close()


def test_held_out_test_level_on_the_engine(engine):
  # Refused by the engine without the setting the adapter adds.
  with pytest.raises(RuntimeError, match='allowHoldOutLevels'):
    engine.Lab(dmlab30.LEVEL_PREFIX + 'rooms_collect_good_objects_test', [])
  env = environment.DmLabEnv('rooms_collect_good_objects_test',
                             mixer_seed=environment.EVALUATION_MIXER_SEED)
  (frame, _), _ = env.reset(seed=0)
  assert frame.shape == (72, 96, 3)
  env.step(0)
  env.close()


class _CountingCache(environment.LevelCache):
  """A `LevelCache` that counts the engine's hits and stores."""

  def __init__(self, cache_dir):
    super().__init__(cache_dir)
    self.hits = self.writes = 0

  def fetch(self, key, pk3_path):
    hit = super().fetch(key, pk3_path)
    self.hits += hit
    return hit

  def write(self, key, pk3_path):
    self.writes += 1
    super().write(key, pk3_path)


def test_level_cache_on_the_engine(engine, tmp_path):
  del engine
  # rooms_keys_doors_puzzle generates and compiles a map at every reset.
  cache = _CountingCache(tmp_path / 'cache')
  first = environment.DmLabEnv('rooms_keys_doors_puzzle', level_cache=cache)
  first.reset(seed=5)
  assert (cache.hits, cache.writes) == (0, 1)
  assert len(os.listdir(tmp_path / 'cache')) == 1
  first.close()
  # Another environment seeded the same way (another actor, a rerun) loads
  # the compiled map instead of compiling it.
  second_cache = _CountingCache(tmp_path / 'cache')
  second = environment.DmLabEnv('rooms_keys_doors_puzzle',
                                level_cache=second_cache)
  (frame, _), _ = second.reset(seed=5)
  assert (second_cache.hits, second_cache.writes) == (1, 0)
  assert frame.std() > 0
  second.step(0)
  second.reset()  # A new seed: a new map.
  assert (second_cache.hits, second_cache.writes) == (1, 1)
  assert len(os.listdir(tmp_path / 'cache')) == 2
  second.close()


def test_levels_that_cannot_run_are_refused_before_the_engine(engine):
  del engine
  for level in installation.NATLAB_MAPS:
    absent = installation.missing_maps(level)
    if absent:
      # The engine would end this process (status 1, no exception) on the
      # first episode that picks a missing map: never started.
      with pytest.raises(installation.LevelUnavailableError,
                         match=f'{level} cannot run.*{absent[0]}.bsp'):
        environment.DmLabEnv(level)
    else:  # A complete installation: the level runs.
      env = environment.DmLabEnv(level)
      env.reset(seed=0)
      env.close()
  for level in sorted(dmlab30.PSYCHLAB_DATASET_LEVELS):
    with pytest.raises(installation.LevelUnavailableError, match='Brady'):
      environment.DmLabEnv(level)
    # The engine's synthetic images stand in for the photographs.
    env = environment.DmLabEnv(level, dataset_path=installation.DUMMY_DATASET)
    (frame, _), _ = env.reset(seed=0)
    assert frame.shape == (72, 96, 3)
    env.step(8)
    env.close()


_IMPORT_ORDER_SCRIPT = '''
import sys
first, second = sys.argv[1:]
__import__(first)
__import__(second)
import deepmind_lab
import numpy as np
import tensorflow as tf
lab = deepmind_lab.Lab('contributed/dmlab30/rooms_watermaze',
                       ['RGB_INTERLEAVED'],
                       config={'width': '96', 'height': '72'})
lab.reset(seed=1)
lab.step(np.zeros([7], np.intc), num_steps=4)
frame = lab.observations()['RGB_INTERLEAVED']
print('frame', frame.shape, float(tf.reduce_mean(tf.cast(frame, tf.float32))))
'''


@pytest.mark.parametrize('order', [('tensorflow', 'deepmind_lab'),
                                   ('deepmind_lab', 'tensorflow')])
def test_tensorflow_and_the_engine_in_either_order(engine, order):
  # Upstream's loader segfaults at the first reset when TensorFlow came
  # first (the renderer binds LLVM symbols of libtensorflow_framework).
  del engine
  result = subprocess.run(
      [sys.executable, '-c', _IMPORT_ORDER_SCRIPT, *order],
      capture_output=True, text=True, timeout=300, cwd=REPO)
  assert result.returncode == 0, result.stderr[-2000:]
  assert 'frame (72, 96, 3)' in result.stdout


def test_trains_on_the_engine_with_actor_processes_and_the_level_cache(
    engine, tmp_path):
  # The local wiring: learner here, 2 actor processes of 2 engines each,
  # sharing a level cache.
  del engine
  cache = tmp_path / 'cache'
  command = [sys.executable, '-m', 'scalable_agent.main',
             '--level=rooms_keys_doors_puzzle', '--torso=shallow',
             '--num_actors=2', '--envs_per_actor=2', '--batch_size=4',
             '--stop_at_frames=20000', '--log_every_s=2',
             f'--level_cache_dir={cache}', f'--logdir={tmp_path / "run"}']
  result = subprocess.run(command, capture_output=True, text=True,
                          timeout=600, cwd=REPO,
                          env=dict(os.environ, PYTHONUNBUFFERED='1'))
  log = result.stdout + result.stderr
  assert result.returncode == 0, log[-3000:]
  # Stopped at the budget (20,000 frames: 12.5 steps of 4 x 100 x 4).
  assert re.search(r'frames 2\d,\d00 ', log), log[-3000:]
  assert os.path.exists(tmp_path / 'run' / 'checkpoints' / 'checkpoint')
  # Four engines reset (and compiled) at least one map each, through the
  # shared cache.
  assert len([f for f in os.listdir(cache) if not f.startswith('.')]) >= 4
  # Episodes (900 agent steps = 3,600 frames each) finished and reached
  # the learner: each of the 4 engines played about 5,000 frames.
  episodes = [int(n) for n in re.findall(r'return -?[\d.]+ \((\d+) episodes',
                                         log)]
  assert episodes and max(episodes) >= 1, log[-3000:]


def test_evaluate_and_report_on_the_engine(engine, tmp_path):
  del engine
  levels = ['rooms_select_nonmatching_object', 'rooms_watermaze',
            'natlab_fixed_large_map']
  result = evaluate.evaluate(
      'dmlab30', checkpoint='none', episodes=2, num_workers=0,
      only_levels=levels, output_dir=str(tmp_path / 'eval'),
      progress=False, print_fn=None)
  played = [l for l in levels if not installation.missing_maps(l)]
  assert list(result.episodes) == played
  assert list(result.skipped) == [l for l in levels if l not in played]
  references = {row.test_name: row for row in dmlab30.LEVELS}
  for level in played:
    returns = result.episodes[level]
    assert len(returns) == 2
    assert all(length > 0 for length in result.lengths[level])
    ref = references[level]
    expected = 100 * (np.mean(returns) - ref.random) / (ref.human - ref.random)
    assert result.human_normalized[level] == pytest.approx(expected)
    assert result.human_normalized[level] == pytest.approx(
        scoring.human_normalized_score(np.mean(returns), ref.random,
                                       ref.human))
  assert result.suite_score is None  # Not all 30 levels.

  data = json.loads((tmp_path / 'eval' / 'scores.json').read_text())
  assert set(data['skipped']) == set(result.skipped)
  assert report.main([str(tmp_path / 'eval' / 'scores.json'),
                      '--output', str(tmp_path / 'report')]) == 0
  table = (tmp_path / 'report' / 'report.md').read_text()
  for level in played:
    assert level in table
  for level in result.skipped:
    assert f'| {level} ' in table and 'skipped' in table


def test_environment_spaces_match_the_suites_spec(engine):
  del engine
  from scalable_agent import suites  # pylint: disable=g-import-not-at-top
  config = suites.resolve('rooms_watermaze')
  spec = config.suite.observation_spec(config)
  env = environment.DmLabEnv('rooms_watermaze')
  frame_space, words_space = env.observation_space.spaces
  assert tuple(spec[0].shape) == frame_space.shape
  assert tuple(spec[1].shape) == words_space.shape
  assert isinstance(env.action_space, gymnasium.spaces.Discrete)
  env.close()
