"""DeepMind Lab as a gymnasium environment, and batches of DMLab-30 levels.

`DmLabEnv` adapts one `deepmind_lab.Lab` to `gymnasium.Env` with IMPALA's
interface: observations `(frame uint8 [72, 96, 3], instruction int32 [16])`,
9 discrete actions (`dmlab30.ACTION_SET`), each repeated for 4 engine frames
with the reward summed by the engine. `make_batched_environment` puts N of
them, spread round-robin over a list of levels, behind the
`BatchedEnvironment` protocol of `scalable_agent.environments`.

DeepMind Lab is built from source (BUILD_NOTES.md, section "DeepMind Lab
(DMLab-30)"), so `deepmind_lab` is imported only when an
environment is created: the rest of the project, its fast tests included,
runs without it. Levels that cannot run on the installation are refused
before the engine is started (`dmlab30.installation`).
"""

import os
import shutil
import tempfile

import gymnasium
import numpy as np

from dmlab30 import installation
from dmlab30 import levels as levels_lib
from scalable_agent import environments
from scalable_agent import networks

# Observation size of the released code and the paper (height 72, width 96).
DEFAULT_WIDTH = 96
DEFAULT_HEIGHT = 72
# Engine frames per agent step; the engine sums the reward over them.
DEFAULT_ACTION_REPEAT = 4

# The engine's seed is a C int.
_MAX_ENGINE_SEED = 2**31 - 1

# The released code sets this mixer seed for evaluation: the engine mixes it
# into every episode seed, so evaluation episodes come from a different part
# of the level distribution than training episodes with the same seeds.
EVALUATION_MIXER_SEED = 0x600D5EED

_OBSERVATION_NAMES = ['RGB_INTERLEAVED', 'INSTR']

_BUILD_NOTES = 'BUILD_NOTES.md, section "DeepMind Lab (DMLab-30)"'


def _import_deepmind_lab():
  """`import deepmind_lab`, with an error that says how to get it."""
  try:
    import deepmind_lab  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    if e.name == 'deepmind_lab':
      raise ImportError(
          'DeepMind Lab is not installed: the DMLab-30 environments need the '
          '`deepmind_lab` Python module, which is on no package index. '
          'Install a wheel (pip install ../shared/deepmind_lab/deepmind_lab-'
          '1.0-py3-none-any.whl dm-env, where that directory is beside the '
          'checkout) or one built from DeepMind Lab\'s sources with its own '
          f'build instructions; see {_BUILD_NOTES}.'
      ) from e
    # Installed but broken: typically a missing dm_env or Debian runtime
    # library, or a wheel built for another Python or numpy.
    raise ImportError(
        f'DeepMind Lab is installed but `import deepmind_lab` failed: {e}. '
        f'See {_BUILD_NOTES} (the Debian runtime packages, and `pip install '
        '-e .[dmlab]` for dm-env).') from e
  return deepmind_lab


def engine_level_name(level):
  """The name DeepMind Lab knows `level` by.

  Args:
    level: a DMLab-30 level name (train or test variant, prefix optional), or
      any other DeepMind Lab level path containing a '/' (used verbatim, e.g.
      'tests/empty_room_test').

  Returns:
    str, e.g. 'contributed/dmlab30/explore_goal_locations_small'.

  Raises:
    ValueError: `level` has no '/' and is not a DMLab-30 level.
  """
  name = levels_lib.strip_prefix(level)
  if name in levels_lib.OTHER_LEVEL_NAMES:
    return name
  try:
    levels_lib.level_index(name)
  except ValueError:
    if '/' in level:
      return level
    raise
  return levels_lib.LEVEL_PREFIX + name


def _variant(name, training):
  """The train or test variant of a level name (one variant for
  `levels_lib.OTHER_LEVEL_NAMES`)."""
  short = levels_lib.strip_prefix(name)
  if short in levels_lib.OTHER_LEVEL_NAMES:
    return short
  level = levels_lib.get_level(name)
  return level.train_name if training else level.test_name


class LevelCache:
  """DeepMind Lab's level cache, as files in one directory.

  Procedurally generated levels (explore, lasertag, skymaze, language,
  keys_doors) compile a map at every reset, which takes seconds; with a cache
  an (actor, level, seed) combination seen before is loaded instead. The
  engine calls `fetch` before compiling and `write` after compiling on a miss.
  Several processes may share one directory.

  Args:
    cache_dir: directory of the cached .pk3 files (created if missing).
  """

  def __init__(self, cache_dir):
    self._cache_dir = os.fspath(cache_dir)
    os.makedirs(self._cache_dir, exist_ok=True)

  @property
  def cache_dir(self):
    return self._cache_dir

  def _path(self, key):
    # Keys are hashes of the map; refuse anything that could leave the
    # directory.
    if not key or os.sep in key or (os.altsep and os.altsep in key) or (
        key.startswith('.')):
      raise ValueError(f'Unexpected level cache key {key!r}.')
    return os.path.join(self._cache_dir, key)

  def fetch(self, key, pk3_path):
    """Copies the cached map of `key` to `pk3_path`; False on a miss."""
    try:
      shutil.copyfile(self._path(key), pk3_path)
    except FileNotFoundError:
      return False
    return True

  def write(self, key, pk3_path):
    """Stores the map the engine just compiled at `pk3_path` under `key`."""
    path = self._path(key)
    if os.path.exists(path):
      return  # Another process compiled the same map first.
    # Copy under a temporary name, then rename: a concurrent `fetch` sees the
    # whole file or none, never a partial one (os.replace is atomic within a
    # file system).
    fd, temp_path = tempfile.mkstemp(
        dir=self._cache_dir, prefix=f'.{key}.', suffix='.tmp')
    os.close(fd)
    try:
      shutil.copyfile(pk3_path, temp_path)
      os.replace(temp_path, path)
    except BaseException:
      if os.path.exists(temp_path):
        os.remove(temp_path)
      raise


class DmLabEnv(gymnasium.Env):
  """One DeepMind Lab level as a `gymnasium.Env`.

  Observation: tuple `(frame, instruction)`:
    frame: uint8 [height, width, 3] (RGB_INTERLEAVED), [72, 96, 3] by default.
    instruction: int32 [networks.MAX_INSTRUCTION_WORDS] word ids of the INSTR
      text (`networks.hash_instruction`), all -1 on levels without language.
  Action: Discrete(9), index into `dmlab30.ACTION_SET`; each agent step runs
    `action_repeat` engine frames and returns the reward they summed.

  An episode ends when the engine stops running (the level's time limit or
  its own end condition); this is `terminated` (DeepMind Lab does not tell
  time limits apart, and the reference treats every end as terminal).
  `truncated` is always False. After the end, the frame of the last running
  step is returned (the engine serves no observations once stopped); call
  `reset()` to go on.

  Every `reset()` starts the engine with a new seed drawn from the
  environment's RNG (`self.np_random`, seeded by `reset(seed=...)`), so a
  seeded environment replays the same sequence of episodes.

  Args:
    level: DMLab-30 level name (train or test variant, `contributed/dmlab30/`
      prefix optional) or another DeepMind Lab level path (with a '/'). Used
      as given: choose the train or test variant yourself (see
      `make_batched_environment`).
    dataset_path: directory of the Brady et al. (2008) images, passed to
      psychlab levels as `datasetPath`; required by
      `dmlab30.PSYCHLAB_DATASET_LEVELS`. `installation.DUMMY_DATASET`
      ('dummy') makes the engine draw coloured squares instead (tests).
    level_cache: object with DeepMind Lab's level cache methods
      (`fetch(key, pk3_path) -> bool`, `write(key, pk3_path)`), e.g.
      `LevelCache(directory)`, or None.
    renderer: 'software' (OSMesa, works headless everywhere) or 'hardware'
      (EGL/GLX, needs a GPU and drivers).
    width, height: frame size in pixels (multiples of 4).
    action_repeat: engine frames per agent step.
    mixer_seed: None, or an int the engine mixes into every episode seed
      (`EVALUATION_MIXER_SEED` for evaluation, as the released code).
    engine_config: dict of further DeepMind Lab settings (e.g.
      {'logToStdErr': 'true'} shows the engine's log, which names missing
      textures).

  Raises:
    installation.LevelUnavailableError: the level cannot run on this
      installation (natlab maps missing, psychlab dataset not given); the
      engine is not started.
  """

  metadata = {'render_modes': []}

  def __init__(self, level, dataset_path=None, level_cache=None,
               renderer='software', width=DEFAULT_WIDTH,
               height=DEFAULT_HEIGHT, action_repeat=DEFAULT_ACTION_REPEAT,
               mixer_seed=None, engine_config=None):
    self._lab = None  # So that close() works if the constructor fails.
    if renderer not in ('software', 'hardware'):
      raise ValueError(
          f"renderer must be 'software' or 'hardware', got {renderer!r}.")
    if action_repeat < 1:
      raise ValueError(f'action_repeat must be >= 1, got {action_repeat}.')
    self.level_name = engine_level_name(level)
    # The DMLab-30 name ('' for other DeepMind Lab levels).
    short_name = (self.level_name[len(levels_lib.LEVEL_PREFIX):]
                  if self.level_name.startswith(levels_lib.LEVEL_PREFIX)
                  else '')

    # DeepMind Lab takes every setting as a string.
    config = {
        'width': str(int(width)),
        'height': str(int(height)),
        # As the released code: level scripts log every episode otherwise.
        'logLevel': 'WARN',
    }
    if short_name in levels_lib.HOLD_OUT_LEVELS:
      config['allowHoldOutLevels'] = 'true'
    if mixer_seed is not None:
      config['mixerSeed'] = str(int(mixer_seed))
    if short_name.startswith('psychlab_') and dataset_path is not None:
      config['datasetPath'] = os.fspath(dataset_path)
    config.update({str(k): str(v) for k, v in (engine_config or {}).items()})
    self.config = config
    # Before the engine sees the level: a natlab level whose maps are
    # missing ends the whole process inside the engine, and a psychlab level
    # without its dataset fails only at the first reset(), in a worker.
    installation.check_level(self.level_name, dataset_path)

    deepmind_lab = _import_deepmind_lab()
    self._lab = deepmind_lab.Lab(
        self.level_name, list(_OBSERVATION_NAMES), config=config,
        renderer=renderer, level_cache=level_cache)

    self._action_repeat = int(action_repeat)
    self.action_space = gymnasium.spaces.Discrete(levels_lib.NUM_ACTIONS)
    self.observation_space = gymnasium.spaces.Tuple((
        gymnasium.spaces.Box(0, 255, (int(height), int(width), 3), np.uint8),
        gymnasium.spaces.Box(
            -1, networks.NUM_INSTRUCTION_BUCKETS - 1,
            (networks.MAX_INSTRUCTION_WORDS,), np.int32),
    ))
    self._last_observation = None
    self._running = False

  def _observation(self):
    # Only valid while the engine runs; the caller checks.
    observations = self._lab.observations()
    return (observations['RGB_INTERLEAVED'],
            networks.hash_instruction(observations['INSTR']))

  def reset(self, *, seed=None, options=None):
    """Starts an episode with a fresh engine seed.

    Args:
      seed: seeds this environment's RNG (only needed once; later resets
        continue its stream).
      options: unused.

    Returns:
      (observation, info); info['engine_seed'] is the seed the episode was
      started with.
    """
    super().reset(seed=seed)
    # A Python int: the engine refuses numpy integers.
    engine_seed = int(self.np_random.integers(_MAX_ENGINE_SEED + 1))
    self._lab.reset(seed=engine_seed)
    self._running = True
    self._last_observation = self._observation()
    return self._last_observation, {'engine_seed': engine_seed}

  def step(self, action):
    """Runs `action` for `action_repeat` frames.

    Returns:
      (observation, reward, terminated, truncated, info): reward is the
      float sum over the frames actually run (fewer if the episode ended).
    """
    if not self._running:
      raise RuntimeError(
          'DmLabEnv.step() called before reset() or after the episode ended; '
          'call reset() first.')
    if not self.action_space.contains(action):
      raise ValueError(
          f'Action {action!r} is not in 0..{levels_lib.NUM_ACTIONS - 1}.')
    reward = self._lab.step(
        levels_lib.ACTION_SET[int(action)], num_steps=self._action_repeat)
    terminated = not self._lab.is_running()
    if terminated:
      self._running = False
    else:
      self._last_observation = self._observation()
    return self._last_observation, float(reward), terminated, False, {}

  def close(self):
    if self._lab is not None:
      self._lab.close()
      self._lab = None
    self._running = False


def make_batched_environment(levels, num_envs, seed=0, training=True,
                             first_env_index=0, dataset_path=None,
                             level_cache_dir=None, renderer='software',
                             width=DEFAULT_WIDTH, height=DEFAULT_HEIGHT,
                             action_repeat=DEFAULT_ACTION_REPEAT):
  """N DeepMind Lab environments over DMLab-30 levels, as one batch.

  Environments are spread round-robin over `levels` by their global index
  across all actors: environment i of this batch has global index
  g = first_env_index + i and plays `levels[g % len(levels)]`, so actors
  given consecutive ranges of indices together cover every level evenly.

  Args:
    levels: DMLab-30 level names (train or test variant, or one name as a
      str); e.g. `dmlab30.LEVEL_NAMES` for the multi-task setting.
    num_envs: N.
    seed: environment g is first reset with seed `seed + g` (global index,
      so that two actors never replay the same episode seeds).
    training: True plays the train variants of the levels; False plays the
      test variants (held-out levels allowed) with the evaluation mixer seed,
      as the released code evaluates.
    first_env_index: global index of this batch's first environment.
    dataset_path: Brady et al. (2008) images directory for psychlab levels.
    level_cache_dir: directory shared as a `LevelCache` by all environments
      (and all processes given the same directory), or None.
    renderer, width, height, action_repeat: as `DmLabEnv`.

  Returns:
    `environments.GymnasiumBatch` of `DmLabEnv`s, with `level_ids` the
    index of each environment's level in `dmlab30.LEVELS` and observations
    `(frame uint8 [N, height, width, 3], instruction int32 [N, 16])`.
  """
  if isinstance(levels, str):
    levels = [levels]
  if not levels:
    raise ValueError('make_batched_environment needs at least one level.')
  if num_envs < 1:
    raise ValueError(f'num_envs must be >= 1, got {num_envs}.')
  names = [_variant(name, training) for name in levels]
  level_ids = [levels_lib.level_id(name) for name in names]
  env_names = [names[(first_env_index + i) % len(names)]
               for i in range(num_envs)]
  env_level_ids = [level_ids[(first_env_index + i) % len(names)]
                   for i in range(num_envs)]

  # Fail before starting any engine rather than in the middle of the batch.
  problems = installation.unavailable_levels(
      sorted(set(env_names)), dataset_path)
  if problems:
    raise installation.LevelUnavailableError(
        'These DMLab levels cannot run on this installation:\n'
        + installation.describe_unavailable(problems))

  level_cache = LevelCache(level_cache_dir) if level_cache_dir else None
  mixer_seed = None if training else EVALUATION_MIXER_SEED
  created = []

  def make_env(i):
    env = DmLabEnv(env_names[i], dataset_path=dataset_path,
                   level_cache=level_cache, renderer=renderer, width=width,
                   height=height, action_repeat=action_repeat,
                   mixer_seed=mixer_seed)
    created.append(env)
    return env

  try:
    return environments.GymnasiumBatch(
        make_env, num_envs, seed=seed + first_env_index,
        level_ids=env_level_ids)
  except BaseException:
    # Engines already started hold a renderer and a few hundred MB each.
    for env in created:
      env.close()
    raise
