"""Which DMLab-30 levels this machine's DeepMind Lab can run, found before
the engine is asked to load them.

Two kinds of level cannot run on an incomplete installation, and both fail
badly inside the engine:

  * the three natlab levels load one of 3 or 100 prebuilt maps per episode
    (`baselab/maps/natlab_forage_*.bsp` in the `deepmind_lab` package). A
    build from a copy of the sources without them (files of 4 MiB or more
    are missing from some copies) lacks those maps, and when the engine
    picks a missing one it ends the whole Python process with status 1, no
    exception, no message. A level is available only with every map.
  * the two psychlab levels that show the Brady et al. (2008) photographs
    fail at their first `reset()` without a dataset directory
    (BUILD_NOTES.md, "The psychlab dataset").

`unavailable_levels` answers from the files alone: it never imports
`deepmind_lab`. Where the package is not installed, or has no `baselab/maps`
directory (the test stand-in), the maps cannot be checked and only the
dataset is.

    python -m dmlab30.installation [--dataset_path DIR]

prints every level and why it cannot run; `python -m dmlab30.survey` starts
each level on the engine.
"""

import argparse
import importlib.util
import os
import sys

from dmlab30 import levels as levels_lib

# The maps each natlab level draws its episodes from (the lists its level
# script builds, game_scripts/levels/contributed/dmlab30/natlab_*.lua).
NATLAB_MAPS = {
    'natlab_fixed_large_map': tuple(
        f'natlab_forage_ltm_{time}' for time in ('dawn', 'day', 'night')),
    'natlab_varying_map_regrowth': tuple(
        f'natlab_forage_stm_{i:03d}' for i in range(100)),
    'natlab_varying_map_randomized': tuple(
        f'natlab_forage_variable_{i:03d}' for i in range(100)),
}

# `dataset_path` value that makes the psychlab levels draw coloured squares
# instead of the photographs (the engine's own test option,
# game_scripts/datasets/brady_konkle_oliva2008.lua): for tests, not for
# results.
DUMMY_DATASET = 'dummy'

# The Brady et al. (2008) images, as the engine reads them.
DATASET_IMAGES = 2400
_DATASET_TEMPLATE = '{:04d}.png'

_BUILD_NOTES = 'BUILD_NOTES.md, section "DeepMind Lab (DMLab-30)"'


class LevelUnavailableError(ValueError):
  """A level cannot run on this installation; the message says why and how
  to get what is missing."""


def engine_directory():
  """The installed `deepmind_lab` package's directory, or None.

  Found without importing the package (importing it loads the engine).
  """
  try:
    spec = importlib.util.find_spec('deepmind_lab')
  except (ImportError, ValueError):
    return None
  if spec is None or not spec.origin:
    return None
  return os.path.dirname(spec.origin)


def missing_maps(level, engine_dir=None):
  """Maps of a natlab `level` absent from the installation.

  Args:
    level: a level name (any level; only natlab levels need maps).
    engine_dir: the `deepmind_lab` package directory (default: the
      installed one).

  Returns:
    list of map names (empty: nothing missing, or nothing to check).
  """
  maps = NATLAB_MAPS.get(levels_lib.strip_prefix(str(level)))
  engine_dir = engine_dir or engine_directory()
  if not maps or engine_dir is None:
    return []
  maps_dir = os.path.join(engine_dir, 'baselab', 'maps')
  if not os.path.isdir(maps_dir):
    return []  # Not a built package (the test stand-in): cannot tell.
  return [m for m in maps
          if not os.path.exists(os.path.join(maps_dir, m + '.bsp'))]


def dataset_problem(dataset_path):
  """Why `dataset_path` does not hold the Brady et al. images, or None."""
  if dataset_path is None:
    return ('it shows the photographs of Brady, Konkle, Alvarez and Oliva '
            '(2008): pass --dataset_path, the directory of the converted '
            f'images ({_BUILD_NOTES}, "The psychlab dataset")')
  if dataset_path == DUMMY_DATASET:
    return None
  if not os.path.isdir(dataset_path):
    return (f'--dataset_path {dataset_path!r} is not a directory; it must '
            f'hold the Brady et al. (2008) images as 0001.png ... '
            f'{DATASET_IMAGES}.png ({_BUILD_NOTES})')
  for i in (1, DATASET_IMAGES):
    name = _DATASET_TEMPLATE.format(i)
    if not os.path.exists(os.path.join(dataset_path, name)):
      return (f'--dataset_path {dataset_path!r} has no {name}: it must hold '
              f'the Brady et al. (2008) images as 0001.png ... '
              f'{DATASET_IMAGES}.png ({_BUILD_NOTES})')
  return None


def level_problem(level, dataset_path=None, engine_dir=None):
  """Why `level` cannot run on this installation, or None if it can."""
  name = levels_lib.strip_prefix(str(level))
  engine_dir = engine_dir or engine_directory()
  absent = missing_maps(name, engine_dir)
  if absent:
    maps_dir = os.path.join(engine_dir, 'baselab', 'maps')
    count = len(NATLAB_MAPS[name])
    return (f'{len(absent)} of its {count} maps are missing from {maps_dir} '
            f'(e.g. {absent[0]}.bsp); DeepMind Lab would end the whole '
            'process when an episode picks one. A build from a full clone of '
            'DeepMind Lab has them')
  if name in levels_lib.PSYCHLAB_DATASET_LEVELS:
    return dataset_problem(dataset_path)
  return None


def unavailable_levels(levels, dataset_path=None):
  """{level: why it cannot run} for those of `levels` that cannot run here.

  Args:
    levels: level names (DMLab-30 train or test names, with or without the
      `contributed/dmlab30/` prefix, or other DeepMind Lab levels).
    dataset_path: the psychlab dataset directory, `DUMMY_DATASET`, or None.

  Returns:
    dict, in the order of `levels`; empty when all can run.
  """
  engine_dir = engine_directory()
  problems = {}
  for level in levels:
    problem = level_problem(level, dataset_path, engine_dir)
    if problem:
      problems[level] = problem
  return problems


def check_level(level, dataset_path=None):
  """Raises `LevelUnavailableError` if `level` cannot run here."""
  problem = level_problem(level, dataset_path)
  if problem:
    name = levels_lib.strip_prefix(str(level))
    raise LevelUnavailableError(f'DMLab level {name} cannot run on this '
                                f'installation: {problem}.')


def describe_unavailable(problems):
  """Lines naming each unavailable level and why."""
  return '\n'.join(f'  {levels_lib.strip_prefix(str(level))}: {why}'
                   for level, why in problems.items())


def main(argv=None):
  parser = argparse.ArgumentParser(
      prog='python -m dmlab30.installation',
      description='Lists the DMLab-30 levels this DeepMind Lab installation '
      'cannot run, and why, without starting the engine.')
  parser.add_argument('--dataset_path', default=None,
                      help='The psychlab dataset directory, if you have it.')
  args = parser.parse_args(argv)
  engine_dir = engine_directory()
  if engine_dir is None:
    print('deepmind_lab is not installed in this Python '
          f'({sys.executable}): see {_BUILD_NOTES}.')
    return 1
  print(f'deepmind_lab at {engine_dir}')
  problems = unavailable_levels(levels_lib.LEVEL_NAMES, args.dataset_path)
  print(f'{len(levels_lib.LEVEL_NAMES) - len(problems)} of '
        f'{len(levels_lib.LEVEL_NAMES)} DMLab-30 levels can run.')
  if problems:
    print('Cannot run:')
    print(describe_unavailable(problems))
  return 0


if __name__ == '__main__':
  sys.exit(main())
