"""DMLab-30: the 30 levels, their reference scores and IMPALA's action set.

The tables are read from the CSV files shipped in this package (copies of the
reference tables, so an installed package needs nothing outside itself):

  scores.csv        train_level, test_level, human, random
  paper_scores.csv  test_level, impala_experts_deep, impala_deep_pbt

Only two levels have distinct train and test variants
(`rooms_collect_good_objects_{train,test}` and
`rooms_exploit_deferred_effects_{train,test}`); for the other 28 both names are
the same. Actors train on the train names; scores are reported on the test
names, which is what the human and random baselines refer to.
"""

import collections
import csv
import difflib
import os

import numpy as np

# One DMLab-30 level. `human` and `random` are the reference returns of the
# test level that human-normalised scores are computed against;
# `impala_experts_deep` and `impala_deep_pbt` are the IMPALA paper's test
# returns (Table B.1, lasertag small/large labels already swapped back to the
# level names of the released code).
Level = collections.namedtuple(
    'Level',
    'train_name test_name human random impala_experts_deep impala_deep_pbt')

# DeepMind Lab finds the DMLab-30 level scripts under this directory of its
# game_scripts/levels; `deepmind_lab.Lab` needs the full name.
LEVEL_PREFIX = 'contributed/dmlab30/'

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _read_csv(filename):
  with open(os.path.join(_PACKAGE_DIR, filename), newline='') as f:
    return list(csv.DictReader(f))


def _load_levels():
  """Joins scores.csv and paper_scores.csv on the test level name."""
  paper = {row['test_level']: row for row in _read_csv('paper_scores.csv')}
  levels = []
  for row in _read_csv('scores.csv'):
    test_name = row['test_level']
    if test_name not in paper:
      raise ValueError(
          f'dmlab30/paper_scores.csv has no row for level {test_name!r}.')
    levels.append(Level(
        train_name=row['train_level'],
        test_name=test_name,
        human=float(row['human']),
        random=float(row['random']),
        impala_experts_deep=float(paper[test_name]['impala_experts_deep']),
        impala_deep_pbt=float(paper[test_name]['impala_deep_pbt'])))
  if len(levels) != 30 or len(paper) != 30:
    raise ValueError(
        f'DMLab-30 tables are incomplete: {len(levels)} rows in scores.csv, '
        f'{len(paper)} in paper_scores.csv (30 each expected).')
  return tuple(levels)


# The 30 levels, in the order of the released code's dmlab30.py. The position
# of a level in this tuple is its level id (`level_ids` of a batch).
LEVELS = _load_levels()

# What actors train on.
LEVEL_NAMES = tuple(level.train_name for level in LEVELS)
# What evaluation runs on and what scores are reported under.
TEST_LEVEL_NAMES = tuple(level.test_name for level in LEVELS)

TRAIN_TO_TEST = {level.train_name: level.test_name for level in LEVELS}

# DeepMind Lab levels outside DMLab-30 that the paper trains on: the fifth
# task of Table 2. They live in DeepMind Lab's own game_scripts/levels (no
# `contributed/dmlab30/` prefix), have one variant (train = test) and no
# human or random reference (they are reported as returns). Their level ids
# follow the 30: 30, 31, ...
OTHER_LEVEL_NAMES = ('seekavoid_arena_01',)

# Every level an agent may train on, indexed by level id.
ALL_LEVEL_NAMES = LEVEL_NAMES + OTHER_LEVEL_NAMES

# The two `*_test` levels: never trained on, need allowHoldOutLevels.
HOLD_OUT_LEVELS = frozenset(set(TEST_LEVEL_NAMES) - set(LEVEL_NAMES))

# Psychlab levels whose stimuli are the images of Brady, Konkle, Alvarez and
# Oliva (2008). The engine only loads the images when an episode starts, so a
# missing `datasetPath` surfaces at `reset()`, not when the level is created.
# The other two psychlab levels draw their stimuli procedurally.
PSYCHLAB_DATASET_LEVELS = frozenset([
    'psychlab_arbitrary_visuomotor_mapping',
    'psychlab_continuous_recognition',
])

# IMPALA's 9 actions (released code and paper), each a DeepMind Lab native
# action of 7 ints:
#   (look_left_right_pixels_per_frame, look_down_up_pixels_per_frame,
#    strafe_left_right, move_back_forward, fire, jump, crouch).
# int32 C (`np.intc`) because that is the only dtype `Lab.step` accepts; rows
# of a C-contiguous array are C-contiguous, so ACTION_SET[i] can be passed to
# the engine as is.
ACTION_NAMES = (
    'forward',
    'backward',
    'strafe_left',
    'strafe_right',
    'look_left',
    'look_right',
    'look_left_forward',
    'look_right_forward',
    'fire',
)
ACTION_SET = np.array([
    (0, 0, 0, 1, 0, 0, 0),     # Forward.
    (0, 0, 0, -1, 0, 0, 0),    # Backward.
    (0, 0, -1, 0, 0, 0, 0),    # Strafe left.
    (0, 0, 1, 0, 0, 0, 0),     # Strafe right.
    (-20, 0, 0, 0, 0, 0, 0),   # Look left.
    (20, 0, 0, 0, 0, 0, 0),    # Look right.
    (-20, 0, 0, 1, 0, 0, 0),   # Look left + forward.
    (20, 0, 0, 1, 0, 0, 0),    # Look right + forward.
    (0, 0, 0, 0, 1, 0, 0),     # Fire.
], dtype=np.intc)
# Shared by every environment of the process: nobody may edit it in place.
ACTION_SET.flags.writeable = False

NUM_ACTIONS = len(ACTION_SET)

_INDEX_BY_NAME = {}
for _i, _level in enumerate(LEVELS):
  _INDEX_BY_NAME[_level.train_name] = _i
  _INDEX_BY_NAME[_level.test_name] = _i
del _i, _level


def strip_prefix(name):
  """A level name without the `contributed/dmlab30/` prefix."""
  return name[len(LEVEL_PREFIX):] if name.startswith(LEVEL_PREFIX) else name


def level_index(name):
  """Index in LEVELS (the level id) of a train or test level name.

  Args:
    name: a DMLab-30 level name, train or test variant, with or without the
      `contributed/dmlab30/` prefix.

  Returns:
    int in [0, 30).

  Raises:
    ValueError: `name` is not a DMLab-30 level; the message names the closest
      level names.
  """
  index = _INDEX_BY_NAME.get(strip_prefix(str(name)))
  if index is None:
    raise ValueError(_unknown_level_message(name))
  return index


def level_id(name):
  """Level id of a DMLab-30 level (its `level_index`) or of one of
  `OTHER_LEVEL_NAMES` (30, 31, ...).

  Raises:
    ValueError: neither; the message names the closest level names.
  """
  name = strip_prefix(str(name))
  if name in OTHER_LEVEL_NAMES:
    return len(LEVELS) + OTHER_LEVEL_NAMES.index(name)
  return level_index(name)


def get_level(name):
  """The `Level` of a train or test level name (see `level_index`)."""
  return LEVELS[level_index(name)]


def _unknown_level_message(name):
  matches = difflib.get_close_matches(
      strip_prefix(str(name)), sorted(_INDEX_BY_NAME) + list(
          OTHER_LEVEL_NAMES), n=3, cutoff=0.6)
  hint = (f' Did you mean {", ".join(repr(m) for m in matches)}?' if matches
          else ' See dmlab30.LEVEL_NAMES for the 30 levels.')
  return f'{name!r} is not a DMLab-30 level.{hint}'
