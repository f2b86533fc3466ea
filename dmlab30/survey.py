"""Starts every DMLab-30 level on this machine's DeepMind Lab and says what
happened.

    python -m dmlab30.survey --output docs/dmlab/survey [--levels a,b]

Each level runs in its own process (an engine that fails may end the process
that holds it) through this project's adapter (`DmLabEnv`): create, reset
with a level cache (the first reset compiles a procedurally generated map),
one whole episode of uniformly random actions (or `--max_steps` agent
steps), then a second reset with the same seed, which the cache serves. It
checks each observation's shape and dtype and records:

  create_s, reset_s, cached_reset_s   seconds
  steps, frames, episode_done         agent steps (frames = steps x 4)
  frames_per_s                        engine frames per second while
                                      stepping (one core; resets excluded)
  return                              the random policy's episode return
  instruction                         the first instruction seen (language
                                      levels), as word ids' count
  textures_not_found                  what the engine's log says it could
                                      not find (shown as its default grid):
                                      textures of the map and of effects.
                                      The log does NOT name missing textures
                                      of object models (pickups such as the
                                      apple or the hat): docs/dmlab lists
                                      those, from the level scripts' models.

Levels that `dmlab30.installation` finds unavailable are listed with the
reason and not started. Writes survey.json and survey.md to `--output`.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

from dmlab30 import installation
from dmlab30 import levels as levels_lib

_TEXTURE_WARNING = re.compile(r"could not find '([^']+)'")


def _survey_one(level, max_steps, seed, dataset_path):
  """In the child process: the measurements of one level, as a dict."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from dmlab30 import environment  # pylint: disable=g-import-not-at-top
  result = {'level': level}
  with tempfile.TemporaryDirectory() as cache_dir:
    start = time.time()
    env = environment.DmLabEnv(
        level, dataset_path=dataset_path,
        level_cache=environment.LevelCache(cache_dir),
        engine_config={'logToStdErr': 'true'})
    result['create_s'] = time.time() - start
    try:
      start = time.time()
      observation, _ = env.reset(seed=seed)
      result['reset_s'] = time.time() - start
      rng = np.random.RandomState(seed)
      frame_spec, instruction_spec = env.observation_space.spaces
      instruction = None
      steps, total, done = 0, 0., False
      start = time.time()
      while steps < max_steps and not done:
        frame, words = observation
        if frame.shape != frame_spec.shape or frame.dtype != np.uint8:
          raise AssertionError(f'frame {frame.shape} {frame.dtype}, '
                               f'expected {frame_spec.shape} uint8')
        if words.shape != instruction_spec.shape or words.dtype != np.int32:
          raise AssertionError(f'instruction {words.shape} {words.dtype}')
        if instruction is None and (words >= 0).any():
          instruction = int((words >= 0).sum())
        observation, reward, done, _, _ = env.step(
            int(rng.randint(levels_lib.NUM_ACTIONS)))
        total += reward
        steps += 1
      elapsed = time.time() - start
      result.update(steps=steps, frames=4 * steps, episode_done=done,
                    frames_per_s=4 * steps / max(elapsed, 1e-9),
                    instruction_words=instruction)
      result['return'] = total
      start = time.time()
      env.reset(seed=seed)  # The same engine seed: the cache has its map.
      result['cached_reset_s'] = time.time() - start
    finally:
      env.close()
  return result


def survey_level(level, max_steps=20000, seed=1, dataset_path=None,
                 timeout_s=600):
  """Runs one level in a child process; returns its measurements (dict).

  `status` is 'ok', 'unavailable' (with `reason`; not started), or
  'failed' (with the child's exit code and last lines of its log).
  """
  problem = installation.level_problem(level, dataset_path)
  if problem:
    return {'level': level, 'status': 'unavailable', 'reason': problem}
  command = [sys.executable, '-m', 'dmlab30.survey', '--_child', level,
             '--max_steps', str(max_steps), '--seed', str(seed)]
  if dataset_path:
    command += ['--dataset_path', dataset_path]
  try:
    child = subprocess.run(command, capture_output=True, text=True,
                           timeout=timeout_s)
  except subprocess.TimeoutExpired:
    return {'level': level, 'status': 'failed',
            'reason': f'no answer within {timeout_s} s'}
  textures = sorted(set(_TEXTURE_WARNING.findall(child.stderr)))
  lines = [l for l in child.stdout.splitlines() if l.startswith('{')]
  if child.returncode != 0 or not lines:
    tail = (child.stderr.strip().splitlines() or [''])[-3:]
    return {'level': level, 'status': 'failed',
            'reason': f'exit status {child.returncode}: ' + ' | '.join(tail),
            'textures_not_found': textures}
  result = json.loads(lines[-1])
  result.update(status='ok', textures_not_found=textures)
  return result


def _markdown(results):
  """survey.md: one row per level; textures every level misses said once."""
  ran = [r for r in results if r['status'] == 'ok']
  common = (set.intersection(*(set(r['textures_not_found']) for r in ran))
            if ran else set())
  rows = ['| level | status | create s | first reset s | cached reset s | '
          'steps | episode ended | frames/s | random return | instruction '
          '| textures not found (beyond those every level misses) |',
          '|' + '---|' * 11]
  for r in results:
    if r['status'] != 'ok':
      rows.append(f"| {r['level']} | {r['status']}: {r['reason']} |"
                  + ' |' * 9)
      continue
    extra = sorted(set(r['textures_not_found']) - common)
    rows.append(
        f"| {r['level']} | ok | {r['create_s']:.1f} | {r['reset_s']:.1f} | "
        f"{r['cached_reset_s']:.1f} | {r['steps']} | "
        f"{'yes' if r['episode_done'] else 'no'} | {r['frames_per_s']:,.0f} "
        f"| {r['return']:g} | {r['instruction_words'] or '-'} | "
        f"{', '.join(extra) or '-'} |")
  rows.append('')
  rows.append('Textures every level that ran misses: '
              + (', '.join(sorted(common)) or 'none') + '.')
  rows.append('')
  rows.append("From the engine's log, which does not name missing textures "
              'of object models (pickups): see docs/dmlab/README.md.')
  return '\n'.join(rows) + '\n'


def main(argv=None):
  parser = argparse.ArgumentParser(
      prog='python -m dmlab30.survey', description=__doc__.split('\n')[0])
  parser.add_argument('--levels', default=None,
                      help='Comma-separated levels (default: the 30 train '
                      'levels, the two *_test levels and seekavoid_arena_01).')
  parser.add_argument('--output', default=None,
                      help='Directory for survey.json and survey.md.')
  parser.add_argument('--max_steps', type=int, default=20000,
                      help='Agent steps at most per level.')
  parser.add_argument('--seed', type=int, default=1)
  parser.add_argument('--dataset_path', default=None)
  parser.add_argument('--_child', default=None, help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args._child:  # pylint: disable=protected-access
    result = _survey_one(args._child, args.max_steps, args.seed,  # pylint: disable=protected-access
                         args.dataset_path)
    print(json.dumps(result), flush=True)
    return 0
  if args.levels:
    names = args.levels.split(',')
  else:
    names = (list(levels_lib.LEVEL_NAMES) + sorted(levels_lib.HOLD_OUT_LEVELS)
             + list(levels_lib.OTHER_LEVEL_NAMES))
  results = []
  for name in names:
    result = survey_level(name, args.max_steps, args.seed, args.dataset_path)
    results.append(result)
    if result['status'] == 'ok':
      print(f"{name}: ok, reset {result['reset_s']:.1f} s (cached "
            f"{result['cached_reset_s']:.1f} s), {result['steps']} steps at "
            f"{result['frames_per_s']:,.0f} frames/s, return "
            f"{result['return']:g}", flush=True)
    else:
      print(f"{name}: {result['status']}: {result['reason']}", flush=True)
  if args.output:
    os.makedirs(args.output, exist_ok=True)
    with open(os.path.join(args.output, 'survey.json'), 'w') as f:
      json.dump(results, f, indent=1)
    with open(os.path.join(args.output, 'survey.md'), 'w') as f:
      f.write(_markdown(results))
  return 1 if any(r['status'] == 'failed' for r in results) else 0


if __name__ == '__main__':
  sys.exit(main())
