"""Multi-task training: one agent, levels spread over actors round robin."""

import glob
import os

import numpy as np
from tensorboard.backend.event_processing import event_accumulator

import atari57
import dmlab30
from scalable_agent import suites
from scalable_agent import main as main_lib


def test_atari57_levels_are_spread_round_robin_with_the_full_action_set():
  config = suites.resolve('atari57')
  assert config.suite.name == "atari57" and len(config.levels) == 57
  # Actor 1 of 2 actors with 4 environments each holds global envs 4..7.
  env = config.suite.make_environment(config, 4, first_env_index=4)
  try:
    np.testing.assert_array_equal(env.level_ids, [4, 5, 6, 7])
    assert env.num_actions == 18  # One policy head for every game.
    env.reset()
    out = env.step(np.zeros([4], np.int32))
    assert out.observation.shape == (4, 84, 84, 4)
  finally:
    env.close()
  assert config.suite.level_names(config)[4] == atari57.GAME_NAMES[4]
  # Even a batch holding a single game uses the run's 18 actions, so actors
  # of any size agree with the learner.
  single = config.suite.make_environment(config, 1)
  try:
    assert single.num_actions == 18
  finally:
    single.close()


def test_dmlab30_multitask_training_on_the_standin(lab, tmp_path):
  # 2 actors x 15 environments = every DMLab-30 level once. The stand-in's
  # episodes last 25 agent steps, so after a few unrolls each level reports.
  del lab
  logdir = tmp_path / 'run'
  args = main_lib.parse_args([
      '--role=single_process', '--level=dmlab30', '--num_actors=2',
      '--envs_per_actor=15', '--torso=shallow', '--batch_size=6',
      '--unroll_length=5', '--total_environment_frames=12000',
      # The engine's synthetic stand-in for the psychlab photographs.
      '--dataset_path=dummy', f'--logdir={logdir}', '--log_every_s=0'])
  loop = main_lib.run_single_process(args)

  per_level = loop.statistics.per_level()
  assert set(per_level) == set(dmlab30.LEVEL_NAMES)
  scores, suite_score = loop.statistics.human_normalized()
  assert set(scores) == set(dmlab30.LEVEL_NAMES)
  assert suite_score is not None

  events = event_accumulator.EventAccumulator(
      glob.glob(os.path.join(logdir, 'events.out.tfevents.*'))[0],
      size_guidance={event_accumulator.TENSORS: 0})
  events.Reload()
  tags = set(events.Tags()['tensors'])
  for level in dmlab30.LEVEL_NAMES:
    assert f'episode_return/{level}' in tags
    assert f'human_normalized_score/{level}' in tags
  assert 'human_normalized_score/suite' in tags
