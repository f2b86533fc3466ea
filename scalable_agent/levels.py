"""Level names -> environments, agents and the paper's settings.

What a user types as `--level`:

  * an Atari game, 'pong' or 'ALE/Pong-v5' (paper protocol, minimal actions);
  * 'atari57': all 57 games, multi-task, the full 18 actions;
  * a DMLab-30 level, 'explore_goal_locations_small' (train names for
    training, the matching test names for evaluation);
  * 'dmlab30': all 30 DMLab levels, multi-task;
  * any other gymnasium id with discrete actions, 'CartPole-v1' (MLP torso,
    vector observations; used by the CI learning test).

Multi-task levels are assigned to environments round robin over the global
environment index (actor i's environment j is number i * envs_per_actor + j),
so every level gets the same share of experience.
"""

import collections
import difflib

from scalable_agent import environments
from scalable_agent import learner as learner_lib
from scalable_agent import networks

# How a level name was understood.
#   suite: 'atari', 'dmlab' or 'gymnasium'.
#   levels: tuple of the suite's level names trained on (several: multi-task).
#   num_action_repeats: environment frames per agent step (for frame counts).
#   default_torso: the torso used unless --torso says otherwise.
#   hparams: this project's default learner settings for this suite.
#   paper_hparams: the paper's (--hparams=paper).
LevelConfig = collections.namedtuple(
    'LevelConfig',
    'name suite levels num_action_repeats default_torso hparams '
    'paper_hparams')

# Settings for small gymnasium control tasks: a few hundred thousand steps.
GYMNASIUM_HPARAMS = learner_lib.Hyperparameters(
    batch_size=8, unroll_length=20, num_action_repeats=1,
    total_environment_frames=5e5, entropy_cost=0.01, learning_rate=0.003,
    epsilon=0.01, max_gradient_norm=40., reward_clipping='none')


def resolve(name):
  """Level name -> LevelConfig; ValueError with suggestions if unknown."""
  import atari57  # pylint: disable=g-import-not-at-top
  import dmlab30  # pylint: disable=g-import-not-at-top
  if name == 'atari57':
    # One policy for 57 games: the paper's batch, not the single-game one.
    return LevelConfig(name, 'atari', tuple(atari57.GAME_NAMES), 4,
                       'shallow', learner_lib.PAPER_ATARI,
                       learner_lib.PAPER_ATARI)
  if name == 'dmlab30':
    return LevelConfig(name, 'dmlab', tuple(dmlab30.LEVEL_NAMES), 4, 'deep',
                       learner_lib.PAPER_DMLAB30, learner_lib.PAPER_DMLAB30)
  try:
    game = atari57.get_game(name)
    return LevelConfig(name, 'atari', (game.name,), 4, 'shallow',
                       learner_lib.ATARI_DEFAULTS, learner_lib.PAPER_ATARI)
  except ValueError:
    pass
  try:
    level = dmlab30.get_level(name)
    return LevelConfig(name, 'dmlab', (level.train_name,), 4, 'deep',
                       learner_lib.PAPER_DMLAB30, learner_lib.PAPER_DMLAB30)
  except ValueError:
    pass
  import gymnasium  # pylint: disable=g-import-not-at-top
  if name in gymnasium.registry:
    return LevelConfig(name, 'gymnasium', (name,), 1, 'mlp', GYMNASIUM_HPARAMS,
                       GYMNASIUM_HPARAMS)
  known = (['atari57', 'dmlab30'] + list(atari57.GAME_NAMES)
           + list(dmlab30.LEVEL_NAMES))
  close = difflib.get_close_matches(name, known + list(gymnasium.registry),
                                    n=5)
  hint = f' Did you mean: {", ".join(close)}?' if close else ''
  raise ValueError(
      f'Unknown level {name!r}.{hint} Levels are Atari games (pong, '
      'ALE/Pong-v5), DMLab-30 levels (explore_goal_locations_small), the '
      'suites atari57 and dmlab30, or a gymnasium id with discrete actions '
      '(CartPole-v1).')


def level_names_by_id(config):
  """Names indexed by `Unroll.level_id`: the suite's whole table, so that
  ids mean the same level in every run (a single game or all 57)."""
  if config.suite == 'atari':
    import atari57  # pylint: disable=g-import-not-at-top
    return list(atari57.GAME_NAMES)
  if config.suite == 'dmlab':
    import dmlab30  # pylint: disable=g-import-not-at-top
    return list(dmlab30.LEVEL_NAMES)
  return list(config.levels)


def canonical_name(config, name, evaluation=False):
  """A level name as the suite's table spells it.

  Atari: the game's short name ('ALE/Pong-v5' -> 'pong'). DMLab: the train
  name, or with `evaluation` the test name that scores are reported under.
  Other suites: unchanged.
  """
  if config.suite == 'dmlab':
    import dmlab30  # pylint: disable=g-import-not-at-top
    level = dmlab30.get_level(name)
    return level.test_name if evaluation else level.train_name
  if config.suite == 'atari':
    import atari57  # pylint: disable=g-import-not-at-top
    return atari57.get_game(name).name
  return name


def make_environment(config, num_envs, seed=0, first_env_index=0,
                     training=True, dataset_path=None, level_cache_dir=None):
  """A BatchedEnvironment of `num_envs` environments for `config`.

  Args:
    config: `LevelConfig`.
    num_envs: N.
    seed: base seed; environments of different actors must get different
      seeds (the launcher passes seed + actor index * N).
    first_env_index: global index of this batch's first environment (for the
      round-robin assignment of multi-task levels).
    training: training protocol (False: the suite's evaluation protocol).
    dataset_path, level_cache_dir: DMLab only (psychlab dataset, map cache).
  """
  if config.suite == 'atari':
    import atari57  # pylint: disable=g-import-not-at-top
    # Multi-task runs share one policy head over all 18 actions, decided by
    # the run's levels, not by the games that happen to fall in this batch
    # (an actor with one environment must agree with the learner).
    return atari57.make_batched_environment(
        list(config.levels), num_envs, seed=seed, training=training,
        first_env_index=first_env_index,
        full_action_space=len(config.levels) > 1)
  if config.suite == 'dmlab':
    from dmlab30 import environment as dmlab_environment  # pylint: disable=g-import-not-at-top
    return dmlab_environment.make_batched_environment(
        list(config.levels), num_envs, seed=seed, training=training,
        first_env_index=first_env_index, dataset_path=dataset_path,
        level_cache_dir=level_cache_dir)
  import gymnasium  # pylint: disable=g-import-not-at-top
  return environments.GymnasiumBatch(
      lambda i: gymnasium.make(config.levels[0]), num_envs, seed=seed)


def make_agent(config, num_actions, torso=None):
  """The suite's agent: DMLab recurrent with language, others feed-forward."""
  torso = torso or config.default_torso
  if config.suite == 'dmlab':
    return networks.dmlab_agent(num_actions, torso)
  return networks.ImpalaAgent(num_actions, networks.make_torso(torso),
                              use_lstm=False)
