"""A stand-in for DeepMind Lab's `deepmind_lab` module, for tests.

It renders nothing and simulates no world; it reproduces the contract of the
real module (lab master, python/dmlab_module.c and docs/users/python_api.md)
closely enough that an adapter which works against it works against the real
engine: the same constructor, argument types, error types and messages,
episode status rules and level cache protocol. Where the real module leaves
behaviour undefined (a non-contiguous action array, a seed that does not fit
a C int), the stand-in raises instead.

Tests install it as `sys.modules['deepmind_lab']` (see tests/test_dmlab30.py);
nothing in the package knows about it.

What it simulates:
  - An episode lasts EPISODE_FRAMES engine frames (module global, read at
    every reset, so tests can shorten or lengthen episodes).
  - The reward of one frame is deterministic:
        MOVE_BACK_FORWARD + 0.5 * FIRE
    so forward x 4 frames = 4.0, backward = -4.0, fire = 2.0, looking = 0.
  - RGB_INTERLEAVED frames are uint8 (height, width, 3): channel 0 holds the
    frame number within the episode, channels 1 and 2 the episode seed mod
    256 and (seed // 256) mod 256: same seed, same frames, as the real
    engine; a new seed tells a new episode apart.
  - INSTR is '' except on language levels, where it depends on the seed.
  - Procedurally generated levels (explore, lasertag, skymaze, language,
    rooms_keys_doors_puzzle) "compile" a map at every reset: with a level
    cache, `fetch(key, pk3_path)` first, then on a miss a small .pk3 file is
    written at pk3_path and `write(key, pk3_path)` called. The key depends
    on level, seed and mixerSeed, as the real key depends on the map.
  - Psychlab levels showing the Brady et al. images fail at reset() (not
    construction) without a datasetPath setting.
  - Held-out `*_test` levels fail at construction without
    allowHoldOutLevels='true'; explore levels reject unknown settings.

Every Lab created is appended to INSTANCES; each records its constructor
arguments (`level`, `observation_names`, `config`, `renderer`,
`level_cache`), the seeds of its resets (`seeds`), every step's action and
num_steps (`steps`), and its map compilations and cache hits.
"""

import hashlib
import os
import shutil
import tempfile

import numpy as np

EPISODE_FRAMES = 100

INSTANCES = []

# Tells tests that this is not the real engine.
IS_STANDIN = True

_DMLAB30_PREFIX = 'contributed/dmlab30/'

_DMLAB30_SCRIPTS = frozenset([
    'rooms_collect_good_objects_train',
    'rooms_collect_good_objects_test',
    'rooms_exploit_deferred_effects_train',
    'rooms_exploit_deferred_effects_test',
    'rooms_select_nonmatching_object',
    'rooms_watermaze',
    'rooms_keys_doors_puzzle',
    'language_select_described_object',
    'language_select_located_object',
    'language_execute_random_task',
    'language_answer_quantitative_question',
    'lasertag_one_opponent_small',
    'lasertag_three_opponents_small',
    'lasertag_one_opponent_large',
    'lasertag_three_opponents_large',
    'natlab_fixed_large_map',
    'natlab_varying_map_regrowth',
    'natlab_varying_map_randomized',
    'skymaze_irreversible_path_hard',
    'skymaze_irreversible_path_varied',
    'psychlab_arbitrary_visuomotor_mapping',
    'psychlab_continuous_recognition',
    'psychlab_sequential_comparison',
    'psychlab_visual_search',
    'explore_object_locations_small',
    'explore_object_locations_large',
    'explore_obstructed_goals_small',
    'explore_obstructed_goals_large',
    'explore_goal_locations_small',
    'explore_goal_locations_large',
    'explore_object_rewards_few',
    'explore_object_rewards_many',
])
# A few non-DMLab-30 levels of the real game_scripts/levels.
_OTHER_SCRIPTS = frozenset(
    ['tests/empty_room_test', 'lt_chasm', 'seekavoid_arena_01'])

_HOLD_OUT = frozenset([
    'rooms_collect_good_objects_test', 'rooms_exploit_deferred_effects_test'])
_DATASET_LEVELS = frozenset([
    'psychlab_arbitrary_visuomotor_mapping', 'psychlab_continuous_recognition'])
_PROCEDURAL_PREFIXES = (
    'explore_', 'lasertag_', 'skymaze_', 'language_', 'rooms_keys_doors')

# Settings the engine itself understands; anything else goes to the level
# script (explore levels reject what they do not know).
_ENGINE_SETTINGS = frozenset([
    'width', 'height', 'fps', 'levelDirectory', 'appendCommand', 'mixerSeed',
    'logLevel', 'logToStdErr', 'datasetPath', 'allowHoldOutLevels',
    'vmMode', 'hasAltCameras', 'maxAltCameraWidth', 'maxAltCameraHeight',
])

_ACTION_SPEC = (
    ('LOOK_LEFT_RIGHT_PIXELS_PER_FRAME', -512, 512),
    ('LOOK_DOWN_UP_PIXELS_PER_FRAME', -512, 512),
    ('STRAFE_LEFT_RIGHT', -1, 1),
    ('MOVE_BACK_FORWARD', -1, 1),
    ('FIRE', 0, 1),
    ('JUMP', 0, 1),
    ('CROUCH', 0, 1),
)

_STATUS_CLOSED = 'closed'
_STATUS_UNINITIALIZED = 'uninitialized'  # Constructed, never reset.
_STATUS_RUNNING = 'running'
_STATUS_TERMINATED = 'terminated'

_INT_MIN, _INT_MAX = -2**31, 2**31 - 1

# Real defaults: keyword arguments that are not given at all. Passing None
# for `config`, `renderer` or `temp_folder` is a TypeError in the real module
# (PyArg_ParseTupleAndKeywords "O!" and "s" formats).
_NOT_GIVEN = object()

_runfiles_path = os.path.dirname(os.path.abspath(__file__))


def version():
  return '1.0'


def runfiles_path():
  return _runfiles_path


def set_runfiles_path(path):
  global _runfiles_path
  if not isinstance(path, str):
    raise TypeError('argument 1 must be str')
  _runfiles_path = path
  return True


def _type_name(value):
  """What the C API's Py_TYPE(value)->tp_name gives, e.g. 'numpy.int64'."""
  cls = type(value)
  if cls.__module__ == 'builtins':
    return cls.__qualname__
  return f'{cls.__module__}.{cls.__qualname__}'


def _require_str(value, what):
  if not isinstance(value, str):
    raise TypeError(
        f'{what} must be str, not {_type_name(value)}')


class Lab:
  """Stand-in for `deepmind_lab.Lab` (see the module docstring)."""

  def __init__(self, level, observations, config=_NOT_GIVEN,
               renderer=_NOT_GIVEN, level_cache=None, temp_folder=_NOT_GIVEN):
    _require_str(level, "argument 'level'")
    if not isinstance(observations, list):
      raise TypeError(
          "argument 'observations' must be list, not "
          f'{type(observations).__name__}')
    if config is _NOT_GIVEN:
      config = {}
    if not isinstance(config, dict):
      raise TypeError(
          f"argument 'config' must be dict, not {type(config).__name__}")
    if renderer is _NOT_GIVEN:
      renderer = 'software'
    _require_str(renderer, "argument 'renderer'")
    if temp_folder is not _NOT_GIVEN:
      _require_str(temp_folder, "argument 'temp_folder'")
    if renderer not in ('', 'software', 'hardware'):
      raise RuntimeError(
          'Failed to set renderer must be "hardware" or "software" actual '
          f'"{renderer}"!')

    self.level = level
    self.observation_names = list(observations)
    self.renderer = renderer or 'software'
    self.level_cache = level_cache
    self.settings = {'fps': '60', 'width': '320', 'height': '240'}
    for key, value in config.items():
      # PyUnicode_AsUTF8 on a non-str: TypeError.
      _require_str(key, 'config key')
      _require_str(value, f'config value of {key!r}')
      self._apply_setting(key, value)
    self.config = dict(config)

    self._init_level()

    known = {'RGB_INTERLEAVED', 'RGBD_INTERLEAVED', 'RGB', 'RGBD', 'INSTR',
             'DEBUG.POS.TRANS'}
    for name in self.observation_names:
      _require_str(name, 'observation name')
      if name not in known:
        raise ValueError(f"Unknown observation '{name}'.")

    if temp_folder is _NOT_GIVEN:
      self._temp_folder = tempfile.mkdtemp(prefix='dmlab_standin_')
      self._owns_temp_folder = True
    else:
      self._temp_folder = temp_folder
      self._owns_temp_folder = False

    self.seeds = []
    self.steps = []
    self.compiles = 0
    self.cache_hits = 0
    self._episode = 0
    self._frame = 0
    self._seed = None
    self._status = _STATUS_UNINITIALIZED
    INSTANCES.append(self)

  def _apply_setting(self, key, value):
    if key in ('width', 'height', 'fps', 'mixerSeed'):
      try:
        number = int(value, 0) if key == 'mixerSeed' else int(value)
      except ValueError:
        number = None
      lowest = 0 if key == 'mixerSeed' else 1
      if number is None or number < lowest or (
          key in ('width', 'height') and number % 4):
        raise RuntimeError(
            f"Failed to apply setting '{key} = {value}' - \"{key} must be a "
            + ('positive multiple of 4"' if key in ('width', 'height')
               else 'positive integer"'))
    self.settings[key] = value

  def _init_level(self):
    """What the engine's init() checks: the level script and its options."""
    if self.level.startswith(_DMLAB30_PREFIX):
      self._short_name = self.level[len(_DMLAB30_PREFIX):]
      found = self._short_name in _DMLAB30_SCRIPTS
    else:
      self._short_name = self.level
      found = self.level in _OTHER_SCRIPTS
    if not found:
      raise RuntimeError(
          'Failed to init environment - "Could not find level script '
          f"'{self.level}'.\"")
    if (self._short_name in _HOLD_OUT and
        self.settings.get('allowHoldOutLevels') != 'true'):
      # The real engine's words (game_scripts/decorators/test_only.lua).
      raise RuntimeError(
          'Failed to init environment - "...decorators/test_only.lua:33: '
          'This level must only be used during evaluation. For training, '
          f'use {self._short_name[:-len("_test")]}_train instead. To use '
          'this level, add the setting "allowHoldOutLevels" = "true" '
          'explicitly"')
    if self._short_name.startswith('explore_'):
      unknown = sorted(set(self.settings) - _ENGINE_SETTINGS)
      if unknown:
        raise RuntimeError(
            'Failed to init environment - "Unrecognised settings: '
            f'{", ".join(unknown)}"')

  def _check_open(self):
    if self._status == _STATUS_CLOSED:
      raise RuntimeError('Environment is closed.')

  @property
  def _width(self):
    return int(self.settings['width'])

  @property
  def _height(self):
    return int(self.settings['height'])

  def _is_procedural(self):
    return self._short_name.startswith(_PROCEDURAL_PREFIXES)

  def _compile_map(self, seed):
    mixer = self.settings.get('mixerSeed', '0')
    key = hashlib.sha1(
        f'{self.level}:{seed}:{mixer}'.encode()).hexdigest()
    pk3_path = os.path.join(self._temp_folder, f'{key}.pk3')
    if os.path.exists(pk3_path):
      os.remove(pk3_path)
    if self.level_cache is not None:
      if self.level_cache.fetch(key, pk3_path):
        if not os.path.isfile(pk3_path):
          raise RuntimeError(
              'Failed to start environment - "level cache fetch() returned '
              f'True but did not copy {pk3_path}"')
        self.cache_hits += 1
        return
    with open(pk3_path, 'wb') as f:
      f.write(f'compiled map {key}\n'.encode())
    self.compiles += 1
    if self.level_cache is not None:
      self.level_cache.write(key, pk3_path)

  def reset(self, episode=-1, seed=None):
    self._check_open()
    if not isinstance(episode, int):
      if hasattr(episode, '__index__'):
        episode = episode.__index__()
      else:
        raise TypeError(
            f"'{type(episode).__name__}' object cannot be interpreted as an "
            'integer')
    if seed is None:
      seed = int(np.random.randint(_INT_MAX))
    elif not isinstance(seed, int):  # PyLong_Check: numpy ints fail it.
      raise ValueError(
          f"'seed' must be int or None, was '{_type_name(seed)}'.")
    elif not _INT_MIN <= seed <= _INT_MAX:
      raise OverflowError(f'seed {seed} does not fit a C int.')
    if episode >= 0:
      self._episode = episode

    if (self._short_name in _DATASET_LEVELS and
        not self.settings.get('datasetPath')):
      self._status = _STATUS_UNINITIALIZED
      raise RuntimeError(
          'Failed to start environment - "[string "datasets/'
          'brady_konkle_oliva2008.lua"]: \n Follow instructions to download '
          'datasets here: \n "data/brady_konkle_oliva2008/README.md"\n and '
          'update DATASET_PATH to point the data folder."')
    if self._is_procedural():
      self._compile_map(seed)

    self.seeds.append(seed)
    self._seed = seed
    self._frame = 0
    self._episode += 1
    self._episode_frames = int(EPISODE_FRAMES)
    self._status = _STATUS_RUNNING
    return True

  def num_steps(self):
    return self._frame

  def is_running(self):
    return self._status == _STATUS_RUNNING

  def step(self, action, num_steps=1):
    self._check_open()
    if not isinstance(action, np.ndarray):
      raise TypeError(
          "argument 1 must be numpy.ndarray, not "
          f'{type(action).__name__}')
    if not isinstance(num_steps, int):
      if hasattr(num_steps, '__index__'):
        num_steps = num_steps.__index__()
      else:
        raise TypeError(
            f"'{type(num_steps).__name__}' object cannot be interpreted as "
            'an integer')
    if not self.is_running():
      raise RuntimeError('Environment in wrong status to advance.')
    if action.ndim != 1 or action.shape[0] != len(_ACTION_SPEC):
      raise ValueError(f'action must have shape ({len(_ACTION_SPEC)})')
    if action.dtype != np.intc:
      raise ValueError('action must have dtype np.intc')
    if not action.flags.c_contiguous:
      # The real module reads the raw buffer: a strided view would be read
      # as the wrong numbers.
      raise ValueError('action must be C-contiguous')
    if num_steps < 1:
      raise ValueError('num_steps must be positive')
    self.steps.append((action.copy(), num_steps))

    frames = min(num_steps, self._episode_frames - self._frame)
    reward_per_frame = float(action[3]) + 0.5 * float(action[4])
    self._frame += frames
    if self._frame >= self._episode_frames:
      self._status = _STATUS_TERMINATED
    return float(reward_per_frame * frames)

  def observations(self):
    self._check_open()
    if not self.is_running():
      raise RuntimeError(
          'Environment in wrong status for call to observations()')
    h, w = self._height, self._width
    rgb = np.empty((h, w, 3), np.uint8)
    rgb[..., 0] = self._frame % 256
    rgb[..., 1] = self._seed % 256
    rgb[..., 2] = (self._seed // 256) % 256
    result = {}
    for name in self.observation_names:
      if name == 'RGB_INTERLEAVED':
        result[name] = rgb.copy()
      elif name == 'RGBD_INTERLEAVED':
        result[name] = np.concatenate(
            [rgb, np.zeros((h, w, 1), np.uint8)], axis=-1)
      elif name == 'RGB':
        result[name] = np.ascontiguousarray(rgb.transpose(2, 0, 1))
      elif name == 'RGBD':
        result[name] = np.concatenate(
            [rgb, np.zeros((h, w, 1), np.uint8)], -1).transpose(2, 0, 1).copy()
      elif name == 'INSTR':
        result[name] = self._instruction()
      elif name == 'DEBUG.POS.TRANS':
        result[name] = np.array([self._frame, 0., 0.])
    return result

  def _instruction(self):
    if not self._short_name.startswith('language_'):
      return ''
    colours = ('red', 'green', 'blue', 'yellow', 'cyan', 'magenta', 'white')
    return f'Pick the {colours[self._seed % len(colours)]} object'

  def events(self):
    self._check_open()
    if self._status not in (_STATUS_RUNNING, _STATUS_TERMINATED):
      raise RuntimeError('Environment in wrong status for call to events()')
    return []

  def observation_spec(self):
    self._check_open()
    h, w = self._height, self._width
    return [
        {'name': 'RGB_INTERLEAVED', 'shape': (h, w, 3), 'dtype': np.uint8},
        {'name': 'RGBD_INTERLEAVED', 'shape': (h, w, 4), 'dtype': np.uint8},
        {'name': 'RGB', 'shape': (3, h, w), 'dtype': np.uint8},
        {'name': 'RGBD', 'shape': (4, h, w), 'dtype': np.uint8},
        {'name': 'INSTR', 'shape': (), 'dtype': str},
        {'name': 'DEBUG.POS.TRANS', 'shape': (3,), 'dtype': np.float64},
    ]

  def action_spec(self):
    self._check_open()
    return [{'min': low, 'max': high, 'name': name}
            for name, low, high in _ACTION_SPEC]

  def read_property(self, key):
    self._check_open()
    _require_str(key, "argument 'key'")
    if key == 'engine.fps':
      return self.settings['fps']
    if key == 'engine.episodeLengthFrames':
      return str(EPISODE_FRAMES)
    raise KeyError(f"'{key}' not found.")

  def write_property(self, key, value):
    self._check_open()
    _require_str(key, "argument 'key'")
    _require_str(value, "argument 'value'")
    raise KeyError(f"'{key}' not found.")

  def properties(self, key=''):
    self._check_open()
    return {'engine.fps': 1} if key in ('', 'engine') else {}

  def close(self):
    if self._status == _STATUS_CLOSED:
      return False
    self._status = _STATUS_CLOSED
    if self._owns_temp_folder:
      shutil.rmtree(self._temp_folder, ignore_errors=True)
    return True
