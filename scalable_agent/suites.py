"""Suites: everything the rest of the code asks about a family of levels.

A suite is one object (a `Suite` subclass) in its own package: Atari-57
(`atari57.suite`), DMLab-30 (`dmlab30.suite`) and plain gymnasium tasks such
as CartPole (`gymnasium_suite.suite`). It answers:

  * which `--level` names it knows (`resolve`, with close-match errors);
  * how to build its batched environments, for training and with its
    evaluation protocol (`make_environment`), and its agent (`make_agent`);
  * its learner settings: this project's defaults and the paper's;
  * its reference scores (random, human, the paper's columns) and headline
    statistic, from which `scoring` computes human-normalised scores.

The training loop, the CLI, evaluate, report and the benchmark ask the suite
and never branch on its name.

Adding a suite: write a package with a module that defines a `Suite`
subclass and an instance of it called `SUITE`, and add that module's name to
`_REGISTERED` below. Levels are resolved by asking the suites in that order.
"""

import collections
import difflib
import importlib

# The modules that define `SUITE`, in the order `resolve` asks them.
_REGISTERED = ('atari57.suite', 'dmlab30.suite', 'gymnasium_suite.suite')

# How a `--level` name was understood.
#   name: the name as given ('pong', 'atari57', 'CartPole-v1').
#   suite: the `Suite` that knows it.
#   levels: tuple of the suite's level names trained on (several: multi-task).
#   hparams: this project's learner settings for it (`learner.Hyperparameters`).
#   paper_hparams: the paper's (--hparams=paper).
LevelConfig = collections.namedtuple(
    'LevelConfig', 'name suite levels hparams paper_hparams')

# The reference numbers of one level.
#   name: its name in the suite's score tables.
#   random, human: reference returns of the human-normalised score.
#   paper: dict paper column key -> the IMPALA paper's return.
LevelReference = collections.namedtuple('LevelReference',
                                        'name random human paper')

# One of the paper's result columns: its key in `LevelReference.paper` and its
# title.
PaperColumn = collections.namedtuple('PaperColumn', 'key title')

# Options a few suites take when they build environments (None: the suite's
# default). dataset_path, level_cache_dir: DMLab's psychlab dataset and map
# cache; max_episode_frames: Atari's episode frame cap.
EnvironmentOptions = collections.namedtuple(
    'EnvironmentOptions', 'dataset_path level_cache_dir max_episode_frames',
    defaults=(None, None, None))
DEFAULT_OPTIONS = EnvironmentOptions()


class Suite:
  """What a suite answers. Subclasses set the attributes and the methods
  marked 'required'; the rest have defaults that fit a suite without
  reference scores.

  Attributes:
    name: the suite's one name ('atari57', 'dmlab30', 'gymnasium').
    title: for tables and plots ('Atari-57').
    level_title: what one level is called in tables ('Game', 'Level').
    num_action_repeats: environment frames per agent step.
    default_torso: the torso used unless --torso says otherwise.
    envs_per_actor: environments an actor steps together by default.
    headline: the `scoring.SuiteScore` field that is the suite's headline
      ('median', 'mean_capped'), or None without reference scores.
    statistics: (title, `SuiteScore` field) rows a report shows.
    paper_table: where the paper's per-level numbers come from ('Table C.1').
    paper_columns: tuple of `PaperColumn`.
    headline_note: one sentence for reports on why the headline is what it
      is.
  """
  name = None
  title = None
  level_title = 'Level'
  num_action_repeats = 1
  default_torso = None
  envs_per_actor = 8
  headline = None
  statistics = ()
  paper_table = None
  paper_columns = ()
  headline_note = ''

  # Level names.

  def resolve(self, name):
    """A `LevelConfig` if this suite knows `name`, else None (required)."""
    raise NotImplementedError

  def known_names(self):
    """Names to suggest when a `--level` is unknown."""
    return []

  def level_names(self, config):
    """Names indexed by `Unroll.level_id` for a run of `config`: the suite's
    whole table, so that an id means the same level in every run."""
    return list(config.levels)

  def canonical_name(self, name, evaluation=False):
    """A level name as the suite's table spells it; with `evaluation`, the
    name its scores are reported under. ValueError if not a level."""
    del evaluation
    return name

  # Environments and agents.

  def make_environment(self, config, num_envs, seed=0, first_env_index=0,
                       training=True, levels=None,
                       options=DEFAULT_OPTIONS):
    """A BatchedEnvironment (`environments.py`) of `num_envs` environments
    (required).

    Args:
      config: `LevelConfig` of the run (its levels are assigned round robin
        over the global environment index first_env_index + i).
      num_envs: N.
      seed: base seed; actors pass seed + actor index * N.
      first_env_index: global index of this batch's first environment.
      training: the training protocol; False: the suite's evaluation
        protocol.
      levels: play only these of `config.levels` (evaluation plays one level
        at a time); the agent is still `config`'s (e.g. 18 actions for
        atari57).
      options: `EnvironmentOptions`.
    """
    raise NotImplementedError

  def unavailable_levels(self, levels, options=DEFAULT_OPTIONS):
    """{level: why it cannot run on this machine} for those of `levels`
    that cannot (e.g. files missing from the installation); found without
    starting an environment. Default: all can."""
    del levels, options
    return {}

  def make_agent(self, num_actions, torso=None):
    """The suite's `networks.ImpalaAgent` (required)."""
    raise NotImplementedError

  def observation_spec(self, config):
    """The observation's `tf.TensorSpec` (nest) of one environment."""
    raise NotImplementedError

  def eval_every_frames(self, config):
    """Default frames between evaluations during local training (0: none)."""
    del config
    return 0

  def protocol(self, max_episode_frames=None):
    """One line naming the evaluation protocol, for score files."""
    if max_episode_frames:
      raise ValueError(f'--max_episode_frames is not supported for the '
                       f'{self.name} suite: its episodes end by themselves.')
    return 'environment defaults'

  # Reference scores (see `scoring`).

  def references(self):
    """dict reference name -> `LevelReference`, in table order ({}: the
    suite has no reference scores)."""
    return {}

  def reference_name(self, name):
    """A level's name in `references()`; ValueError if it has none."""
    return self.canonical_name(name, evaluation=True)

  def default_paper_column(self, multi_task, torso):
    """The key of the paper's column closest to a run, or None."""
    del multi_task, torso
    return None

  def paper_column_title(self, key):
    for column in self.paper_columns:
      if column.key == key:
        return column.title
    raise ValueError(
        f'Unknown paper column {key!r} for {self.name}; choose one of '
        f'{[c.key for c in self.paper_columns]}.')

  def __repr__(self):
    return f'<suite {self.name}>'


def all_suites():
  """The registered `Suite`s, in resolution order."""
  return [importlib.import_module(module).SUITE for module in _REGISTERED]


def get(name):
  """The registered suite called `name` (a `Suite` is returned as is)."""
  if isinstance(name, Suite):
    return name
  for suite in all_suites():
    if suite.name == name:
      return suite
  raise ValueError(f'Unknown suite {name!r}; the suites are '
                   f'{", ".join(s.name for s in all_suites())}.')


class LevelsUnavailableError(ValueError):
  """Levels of a run cannot run on this machine; the message names each
  and why."""


def runnable(config, options=DEFAULT_OPTIONS, skip_unavailable=False):
  """`config` restricted to the levels that can run here.

  Args:
    config: a `LevelConfig`.
    options: `EnvironmentOptions` (e.g. the DMLab dataset path).
    skip_unavailable: drop the levels that cannot run instead of refusing.

  Returns:
    (config, skipped): the config with the runnable levels, and
    {level: why} of those dropped.

  Raises:
    LevelsUnavailableError: a level cannot run and `skip_unavailable` is
      False, or none can.
  """
  problems = config.suite.unavailable_levels(config.levels, options)
  if not problems:
    return config, {}
  listing = '\n'.join(f'  {level}: {why}' for level, why in problems.items())
  available = tuple(l for l in config.levels if l not in problems)
  if not available:
    raise LevelsUnavailableError(
        f'{config.name}: no level can run on this machine:\n{listing}')
  if not skip_unavailable:
    raise LevelsUnavailableError(
        f'{config.name}: {len(problems)} of its {len(config.levels)} levels '
        f'cannot run on this machine:\n{listing}\nInstall what is missing, '
        f'or pass --skip_unavailable_levels to use the other '
        f'{len(available)}.')
  return config._replace(levels=available), problems


def resolve(name):
  """A `--level` name -> `LevelConfig`; ValueError with suggestions."""
  suites = all_suites()
  for suite in suites:
    config = suite.resolve(name)
    if config is not None:
      return config
  known = [n for suite in suites for n in suite.known_names()]
  close = difflib.get_close_matches(name, known, n=5)
  hint = f' Did you mean: {", ".join(close)}?' if close else ''
  raise ValueError(
      f'Unknown level {name!r}.{hint} Levels are Atari games (pong, '
      'ALE/Pong-v5), DMLab-30 levels (explore_goal_locations_small), the '
      'suites atari57 and dmlab30, or a gymnasium id with discrete actions '
      '(CartPole-v1).')
