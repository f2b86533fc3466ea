"""The DMLab-30 suite: one level or all 30 ('dmlab30').

Agents train on the train variants of the levels and are scored on the test
variants, with the evaluation mixer seed, as the released code does. Scores:
the mean over the 30 levels of the human-normalised score capped at 100
(paper Table 3). DeepMind Lab itself is imported only when an environment is
built (BUILD_NOTES.md says how to install it).
"""

from dmlab30 import levels as levels_lib
from scalable_agent import suites

_MULTI_TASK = 'dmlab30'


class DmLab30Suite(suites.Suite):
  """DMLab-30 (see the module docstring)."""
  name = 'dmlab30'
  title = 'DMLab-30'
  level_title = 'Level'
  num_action_repeats = 4
  default_torso = 'deep'
  envs_per_actor = 4
  headline = 'mean_capped'
  statistics = (('Mean capped human-normalised', 'mean_capped'),
                ('Mean uncapped human-normalised', 'mean'))
  paper_table = 'Table B.1'
  paper_columns = (
      suites.PaperColumn('impala_experts_deep', 'IMPALA-Experts (deep)'),
      suites.PaperColumn('impala_deep_pbt', 'IMPALA (deep, PBT)'),
  )
  headline_note = ('The mean capped score (each level at most 100%) is the '
                   'DMLab-30 headline; scores below random count negative.')

  def resolve(self, name):
    from scalable_agent import learner as learner_lib  # pylint: disable=g-import-not-at-top
    hparams = learner_lib.PAPER_DMLAB30
    if name == _MULTI_TASK:
      return suites.LevelConfig(name, self, levels_lib.LEVEL_NAMES, hparams,
                                hparams)
    if name in levels_lib.OTHER_LEVEL_NAMES:
      return suites.LevelConfig(name, self, (name,), hparams, hparams)
    try:
      level = levels_lib.get_level(name)
    except ValueError:
      return None
    return suites.LevelConfig(name, self, (level.train_name,), hparams,
                              hparams)

  def known_names(self):
    return ([_MULTI_TASK] + list(levels_lib.LEVEL_NAMES)
            + list(levels_lib.TEST_LEVEL_NAMES)
            + list(levels_lib.OTHER_LEVEL_NAMES))

  def level_names(self, config):
    """Indexed by level id: the 30, then `OTHER_LEVEL_NAMES`."""
    return list(levels_lib.ALL_LEVEL_NAMES)

  def canonical_name(self, name, evaluation=False):
    """The train name, or with `evaluation` the test name scores use (a
    level outside DMLab-30 has one name)."""
    if name in levels_lib.OTHER_LEVEL_NAMES:
      return name
    level = levels_lib.get_level(name)
    return level.test_name if evaluation else level.train_name

  def reference_name(self, name):
    if name in levels_lib.OTHER_LEVEL_NAMES:
      raise ValueError(f'{name} is not a DMLab-30 level: it has no human or '
                       'random reference score.')
    return super().reference_name(name)

  def make_environment(self, config, num_envs, seed=0, first_env_index=0,
                       training=True, levels=None,
                       options=suites.DEFAULT_OPTIONS):
    """training=False: the test variants with the evaluation mixer seed."""
    if options.max_episode_frames:
      self.protocol(options.max_episode_frames)  # Raises: not supported.
    from dmlab30 import environment  # pylint: disable=g-import-not-at-top
    return environment.make_batched_environment(
        list(levels or config.levels), num_envs, seed=seed, training=training,
        first_env_index=first_env_index, dataset_path=options.dataset_path,
        level_cache_dir=options.level_cache_dir)

  def unavailable_levels(self, levels, options=suites.DEFAULT_OPTIONS):
    """Natlab levels whose maps are missing, psychlab levels without their
    dataset (`dmlab30.installation`; the engine is not started)."""
    from dmlab30 import installation  # pylint: disable=g-import-not-at-top
    return installation.unavailable_levels(levels, options.dataset_path)

  def make_agent(self, num_actions, torso=None):
    from scalable_agent import networks  # pylint: disable=g-import-not-at-top
    return networks.dmlab_agent(num_actions, torso or self.default_torso)

  def observation_spec(self, config):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from dmlab30 import environment  # pylint: disable=g-import-not-at-top
    from scalable_agent import networks  # pylint: disable=g-import-not-at-top
    return (tf.TensorSpec([environment.DEFAULT_HEIGHT,
                           environment.DEFAULT_WIDTH, 3], tf.uint8),
            tf.TensorSpec([networks.MAX_INSTRUCTION_WORDS], tf.int32))

  def protocol(self, max_episode_frames=None):
    super().protocol(max_episode_frames)
    return 'DMLab-30 test levels, evaluation mixer seed'

  def references(self):
    return {l.test_name: suites.LevelReference(
        l.test_name, l.random, l.human,
        {c.key: getattr(l, c.key) for c in self.paper_columns})
            for l in levels_lib.LEVELS}

  def default_paper_column(self, multi_task, torso):
    """All levels -> IMPALA deep PBT (the paper's multi-task headline); one
    level -> IMPALA-Experts deep."""
    del torso
    return 'impala_deep_pbt' if multi_task else 'impala_experts_deep'


SUITE = DmLab30Suite()
