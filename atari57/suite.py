"""The Atari-57 suite: one game ('pong') or all 57 ('atari57').

One game trains the feed-forward agent on the game's minimal action set with
this project's single-game settings (BUILD_NOTES.md, "Atari defaults");
'atari57' trains one agent on all 57 games round robin, with all 18 actions
(so that one policy head means the same in every game) and the paper's
Table G.1 settings. Scores: the median human-normalised score over the 57
games (paper Table 4), against the random and human scores of DQN Zoo.
"""

from atari57 import games as games_lib
from scalable_agent import suites

_MULTI_TASK = 'atari57'


class AtariSuite(suites.Suite):
  """Atari-57 (see the module docstring)."""
  name = 'atari57'
  title = 'Atari-57'
  level_title = 'Game'
  num_action_repeats = 4
  default_torso = 'shallow'
  envs_per_actor = 32
  headline = 'median'
  statistics = (('Median human-normalised', 'median'),
                ('Mean human-normalised', 'mean'))
  paper_table = 'Table C.1'
  paper_columns = (
      suites.PaperColumn('impala_shallow_experts', 'IMPALA shallow experts'),
      suites.PaperColumn('impala_deep_experts', 'IMPALA deep experts'),
      suites.PaperColumn('impala_deep_multitask', 'IMPALA deep multi-task'),
  )
  headline_note = ('The median is the Atari-57 headline: the means the paper '
                   'publishes do not reproduce from its own per-game table.')

  def resolve(self, name):
    from scalable_agent import learner as learner_lib  # pylint: disable=g-import-not-at-top
    if name == _MULTI_TASK:
      # One policy for 57 games: the paper's batch, not the single-game one.
      return suites.LevelConfig(name, self, games_lib.GAME_NAMES,
                                learner_lib.PAPER_ATARI,
                                learner_lib.PAPER_ATARI)
    try:
      game = games_lib.get_game(name)
    except ValueError:
      return None
    return suites.LevelConfig(name, self, (game.name,),
                              learner_lib.ATARI_DEFAULTS,
                              learner_lib.PAPER_ATARI)

  def known_names(self):
    return [_MULTI_TASK] + list(games_lib.GAME_NAMES)

  def level_names(self, config):
    return list(games_lib.GAME_NAMES)

  def canonical_name(self, name, evaluation=False):
    """'ALE/Pong-v5' -> 'pong', for training and evaluation alike."""
    return games_lib.get_game(name).name

  def make_environment(self, config, num_envs, seed=0, first_env_index=0,
                       training=True, levels=None,
                       options=suites.DEFAULT_OPTIONS):
    from atari57 import environment  # pylint: disable=g-import-not-at-top
    kwargs = {}
    if options.max_episode_frames:
      kwargs['max_episode_frames'] = int(options.max_episode_frames)
    # A multi-task run shares one policy head over all 18 actions, decided
    # by the run's levels, not by the games that happen to fall in this
    # batch (an actor or evaluation worker with one game must agree with
    # the learner).
    return environment.make_batched_environment(
        list(levels or config.levels), num_envs, seed=seed, training=training,
        first_env_index=first_env_index,
        full_action_space=len(config.levels) > 1, **kwargs)

  def make_agent(self, num_actions, torso=None):
    from scalable_agent import networks  # pylint: disable=g-import-not-at-top
    return networks.atari_agent(num_actions, torso or self.default_torso)

  def observation_spec(self, config):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from atari57 import environment  # pylint: disable=g-import-not-at-top
    return tf.TensorSpec(environment.OBSERVATION_SHAPE, tf.uint8)

  def eval_every_frames(self, config):
    # One game learns within millions of frames: evaluate along the way.
    return int(1e6) if len(config.levels) == 1 else 0

  def protocol(self, max_episode_frames=None):
    from atari57 import environment  # pylint: disable=g-import-not-at-top
    full = environment.MAX_EPISODE_FRAMES
    cap = max_episode_frames or full
    return (f'Atari evaluation: full game, 1-30 random no-ops, {cap}-frame '
            'cap' + (' (SHORTENED: not comparable with the paper)'
                     if cap != full else ''))

  def references(self):
    return {g.name: suites.LevelReference(
        g.name, g.random, g.human,
        {c.key: getattr(g, c.key) for c in self.paper_columns})
            for g in games_lib.GAMES}

  def default_paper_column(self, multi_task, torso):
    """One agent for all games -> deep multi-task; one game -> the experts
    of the same torso depth (shallow unless the torso is 'deep')."""
    if multi_task:
      return 'impala_deep_multitask'
    return ('impala_deep_experts' if torso == 'deep'
            else 'impala_shallow_experts')


SUITE = AtariSuite()
