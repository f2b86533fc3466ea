"""Evaluates an IMPALA agent with its suite's evaluation protocol.

    python -m scalable_agent.evaluate --level=atari57 \\
        --checkpoint=runs/atari57 --episodes=200 --num_workers=2 \\
        --output=eval/atari57

Loads the agent's weights from a training checkpoint (or takes a fresh,
untrained agent with `--checkpoint=none`), plays `--episodes` finished
episodes of every level of `--level` and writes (`score_files`)

    <output>/scores.csv    one row per episode: level, episode, return,
                           length (agent steps), frames (environment frames)
    <output>/scores.json   the episode returns per level, their means, the
                           human-normalised scores and the suite's headline

then prints the per-level table beside the paper's IMPALA numbers and the
suite's headline (DMLab-30: mean capped human-normalised score; Atari-57:
median). `python -m scalable_agent.report` turns score files into tables and
plots.

The protocols (Atari: whole games from 1..30 random no-ops, at most 108,000
frames; DMLab-30: the test levels with the evaluation mixer seed) and the
episode counting are `play`'s. `--max_episode_frames` lowers Atari's cap for
quick runs; returns of capped games are then not comparable with the paper,
and the score file says so.

Levels are tasks of a pool of `--num_workers` spawned processes
(`concurrent.futures`), one level per task, so that a worker done with a
short game takes the next level instead of idling behind a fixed split. Each
worker builds its agent once and plays each level with several environments
stepped together, so that one forward pass serves all of them. A level's
seeds do not depend on the worker that plays it: results are the same for
any number of workers. `--num_workers=0` runs everything in this process
(tests, debugging).
"""

import argparse
import collections
import concurrent.futures
import functools
import multiprocessing
import os
import sys
import time

import numpy as np
import tabulate
import tqdm

from scalable_agent import checkpoints
from scalable_agent import console
from scalable_agent import play
from scalable_agent import score_files
from scalable_agent import scoring
from scalable_agent import suites

# What `evaluate` raises for an unusable checkpoint (defined in
# `checkpoints`); callers may catch it from here.
CheckpointError = checkpoints.CheckpointError

# Environments a level is played with at once (fewer if fewer episodes).
DEFAULT_ENVS_PER_LEVEL = 8

# What a worker needs to know; crosses the process boundary (pickled).
_WorkerSpec = collections.namedtuple(
    '_WorkerSpec',
    'level checkpoint torso episodes envs_per_level seed max_episode_frames '
    'dataset_path level_cache_dir intra_op_threads tf_logs')


# Playing levels, in this process or in workers.


class _LevelPlayer:
  """Plays the levels of a `_WorkerSpec` one at a time.

  The agent is built (and its checkpoint restored) at the first level and
  reused for the next ones: levels share the batch size, so its step
  compiles once per process.
  """

  def __init__(self, spec):
    self.spec = spec
    self._config = suites.resolve(spec.level)
    self._policy = None

  def play(self, level, on_episode=lambda episode: None):
    """The `play.Episode`s of one of the config's levels."""
    spec, config = self.spec, self._config
    # A level's seeds (environments and actions) do not depend on which
    # worker plays it, nor after which levels, so a run is reproducible
    # whatever the number of workers.
    level_seed = spec.seed + 1000 * config.levels.index(level)
    env = play.make_evaluation_environment(
        config, level, spec.envs_per_level, seed=level_seed,
        max_episode_frames=spec.max_episode_frames,
        dataset_path=spec.dataset_path, level_cache_dir=spec.level_cache_dir)
    try:
      if self._policy is None:
        import tensorflow as tf  # pylint: disable=g-import-not-at-top
        # The initial weights of an untrained agent.
        tf.random.set_seed(spec.seed)
        self._policy = play.Policy(config, env.num_actions, spec.torso,
                                   spec.checkpoint, env.reset())
      return play.play_level(
          self._policy, env, spec.episodes, play.report_name(config, level),
          on_episode, rng=np.random.RandomState(level_seed))
    finally:
      env.close()


# The player of this worker process: made by its first task, reused by the
# next ones (see `_LevelPlayer`). Each `evaluate` call has a pool of its own,
# so a process only ever sees one `_WorkerSpec`.
_worker_player = None


def _play_in_worker(spec, level):
  """A pool task: the `play.Episode`s of `level`."""
  global _worker_player
  if _worker_player is None:
    console.setup(spec.tf_logs)  # Before this process's first TF import.
    if spec.intra_op_threads:
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      # Workers share the machine's cores; more threads per op than cores
      # per worker only adds contention. (Only possible before TensorFlow's
      # first op, hence here.)
      tf.config.threading.set_intra_op_parallelism_threads(
          spec.intra_op_threads)
      tf.config.threading.set_inter_op_parallelism_threads(
          spec.intra_op_threads)
    _worker_player = _LevelPlayer(spec)
  return _worker_player.play(level)


def _run_pool(task, levels, num_workers, on_result):
  """Runs `task(level)` for each of `levels` in spawned worker processes.

  Args:
    task: picklable callable (a module-level function or a partial of one).
    levels: the tasks' arguments, handed out one at a time in this order.
    num_workers: processes.
    on_result: called in this process with (level, task's result) as each
      task finishes, in the order they finish.

  Raises:
    CheckpointError: as a task raised it (it already says what to do).
    RuntimeError: a task raised anything else (the message names its level;
      the worker's traceback is chained), or a worker process died.
  """
  context = multiprocessing.get_context('spawn')  # Fork and TF do not mix.
  with concurrent.futures.ProcessPoolExecutor(
      num_workers, mp_context=context) as pool:
    futures = {pool.submit(task, level): level for level in levels}
    try:
      for future in concurrent.futures.as_completed(futures):
        on_result(futures[future], _task_result(future, futures[future]))
    except BaseException:
      _stop_workers(pool)
      raise


def _task_result(future, level):
  """`future`'s result; its error as `_run_pool` documents it."""
  try:
    return future.result()
  except CheckpointError:
    raise
  except concurrent.futures.BrokenExecutor as e:  # BrokenProcessPool.
    raise RuntimeError(
        'An evaluation worker process died without reporting an error '
        '(killed from outside: out of memory?). Try fewer --num_workers or '
        '--envs_per_level.') from e
  except Exception as e:  # pylint: disable=broad-except
    raise RuntimeError(f'Evaluation worker failed on level {level!r}: '
                       f'{type(e).__name__}: {e}') from e


def _stop_workers(pool):
  """After an error: cancels the levels not started and ends the running
  ones, whose episodes nobody will use; a long game would otherwise keep the
  caller waiting for it before the error surfaces."""
  terminate = getattr(pool, 'terminate_workers', None)  # Python >= 3.14.
  if terminate is not None:
    terminate()  # Cancels what has not started, too.
    return
  # Before 3.14 the pool's processes are only reachable through its private
  # dict; take them before shutdown() drops it.
  processes = list((getattr(pool, '_processes', None) or {}).values())
  pool.shutdown(wait=False, cancel_futures=True)
  for process in processes:
    if process.is_alive():
      process.terminate()


# The evaluation.


def evaluate(level, checkpoint=None, episodes=10, num_workers=2, torso=None,
             output_dir=None, seed=0, envs_per_level=None,
             max_episode_frames=None, dataset_path=None, level_cache_dir=None,
             only_levels=None, progress=True, print_fn=print,
             tf_logs=False):
  """Evaluates an agent on every level of `level`; see the module docstring.

  Args:
    level: what `suites.resolve` takes: 'atari57', 'pong', 'dmlab30', a
      DMLab-30 level, ...
    checkpoint: what `checkpoints.resolve` takes; None or 'none' evaluates a
      fresh, untrained agent.
    episodes: finished episodes per level.
    num_workers: worker processes; 0 runs in this process.
    torso: the agent's torso (None: the suite's default). Must be the one
      the checkpoint was trained with.
    output_dir: where scores.csv and scores.json go (None: not written).
    seed: base seed of environments and action sampling.
    envs_per_level: environments a level is played with at once (default
      min(episodes, DEFAULT_ENVS_PER_LEVEL)).
    max_episode_frames: Atari episode frame cap (None: 108,000).
    dataset_path, level_cache_dir: DMLab psychlab dataset and map cache.
    only_levels: evaluate only these levels of a multi-task `level` (the
      agent is still the multi-task one, e.g. 18 Atari actions); None: all.
      Without every level there is no suite headline.
    progress: show a progress bar (episodes, and levels done) on stderr.
    print_fn: where the table goes (None: not printed).
    tf_logs: let worker processes show TensorFlow's log lines.

  Returns:
    `score_files.EvaluationResult`.

  Raises:
    CheckpointError: the checkpoint is missing, corrupt or for another agent.
    ValueError: unknown level or invalid arguments.
    RuntimeError: a worker process failed or died.
  """
  if episodes < 1:
    raise ValueError(f'episodes must be >= 1, got {episodes}.')
  config = suites.resolve(level)
  level_names = select_levels(config, only_levels)
  # Levels that cannot run on this machine (DMLab: natlab maps, psychlab
  # dataset) are marked skipped in the results, not scored as zero.
  runnable, skipped = suites.runnable(
      config._replace(levels=tuple(level_names)),
      suites.EnvironmentOptions(dataset_path=dataset_path),
      skip_unavailable=True)
  level_names = list(runnable.levels)
  skipped = {play.report_name(config, l): why for l, why in skipped.items()}
  checkpoint = checkpoints.resolve(checkpoint)
  config.suite.protocol(max_episode_frames)  # Refuses an unsupported cap.
  envs_per_level = envs_per_level or min(episodes, DEFAULT_ENVS_PER_LEVEL)
  # More environments than episodes would only play episodes nobody counts.
  envs_per_level = max(1, min(envs_per_level, episodes))
  num_workers = max(0, min(num_workers, len(level_names)))
  spec = _WorkerSpec(
      level=level, checkpoint=checkpoint, torso=torso, episodes=episodes,
      envs_per_level=envs_per_level, seed=seed,
      max_episode_frames=max_episode_frames, dataset_path=dataset_path,
      level_cache_dir=level_cache_dir,
      intra_op_threads=max(1, (os.cpu_count() or 1) // max(1, num_workers)),
      tf_logs=tf_logs)

  collected = {}
  bar = tqdm.tqdm(total=len(level_names) * episodes, unit='episode',
                  desc=f'evaluating {level}', file=sys.stderr,
                  disable=not progress, dynamic_ncols=True)

  def finished(level_name, played, in_worker=False):
    collected[play.report_name(config, level_name)] = played
    bar.set_postfix_str(f'{len(collected)}/{len(level_names)} levels',
                        refresh=not in_worker)
    if in_worker:
      bar.update(len(played))  # A worker's episodes come at the level's end.

  start = time.time()
  with bar:
    bar.set_postfix_str(f'0/{len(level_names)} levels')
    if num_workers == 0:
      player = _LevelPlayer(spec)
      for level_name in level_names:
        finished(level_name, player.play(
            level_name, on_episode=lambda episode: bar.update()))
    else:
      _run_pool(functools.partial(_play_in_worker, spec), level_names,
                num_workers, functools.partial(finished, in_worker=True))
  result = _summarise(config, level, level_names, checkpoint, torso,
                      collected, max_episode_frames, time.time() - start,
                      skipped)
  if output_dir:
    score_files.write_results(result, output_dir)
  if print_fn is not None:
    print_fn(format_table(result))
  return result


def select_levels(config, only_levels=None):
  """The levels of `config` to evaluate: all, or those of `only_levels`."""
  if not only_levels:
    return list(config.levels)
  by_name = {}
  for level in config.levels:
    by_name[level] = level
    by_name[play.report_name(config, level)] = level
  selected = []
  for name in only_levels:
    try:
      canonical = config.suite.canonical_name(name)
    except ValueError:
      canonical = None
    if canonical not in by_name:
      raise ValueError(f'{name!r} is not a level of --level={config.name} '
                       f'(levels: {", ".join(config.levels)}).')
    selected.append(by_name[canonical])
  # The suite's order, whatever the command line's, as in the tables.
  return [level for level in config.levels if level in selected]


def _summarise(config, level, level_names, checkpoint, torso, collected,
               max_episode_frames, elapsed_s, skipped=None):
  """`play.Episode`s by reported level name -> `EvaluationResult`."""
  names = [play.report_name(config, l) for l in level_names]
  episodes = {n: [e.episode_return for e in collected[n]] for n in names}
  lengths = {n: [e.length for e in collected[n]] for n in names}
  mean_return = {n: float(np.mean(r)) for n, r in episodes.items()}
  suite = config.suite
  torso = torso or suite.default_torso
  references = suite.references()
  human_normalized = {}
  suite_score = None
  paper_column = None
  if references:
    for name, value in mean_return.items():
      reference = references[name]
      human_normalized[name] = float(scoring.human_normalized_score(
          value, reference.random, reference.human))
    if len(names) == len(references):
      suite_score = scoring.suite_score(suite, episodes)
    paper_column = suite.default_paper_column(
        multi_task=len(config.levels) > 1, torso=torso)
  return score_files.EvaluationResult(
      suite=suite.name, level=level, checkpoint=checkpoint, torso=torso,
      episodes=episodes, lengths=lengths, mean_return=mean_return,
      human_normalized=human_normalized, paper_column=paper_column,
      suite_score=suite_score, max_episode_frames=max_episode_frames,
      elapsed_s=float(elapsed_s), skipped=skipped or {})


def format_table(result):
  """The per-level table and the headline, as printed by the command."""
  suite = suites.get(result.suite)
  column = result.paper_column
  references = suite.references()
  title = suite.paper_column_title(column) if column else ''
  header = ['level', 'episodes', 'mean return', 'human-norm.']
  if column:
    header += ['paper return', 'paper h.-n.']
  rows = []
  for name, returns in result.episodes.items():
    score = result.human_normalized.get(name)
    row = [name, str(len(returns)), f'{result.mean_return[name]:.1f}',
           '' if score is None else f'{score:.1f}%']
    if column:
      reference = references[name]
      paper = reference.paper[column]
      paper_score = scoring.human_normalized_score(
          paper, reference.random, reference.human)
      row += [f'{paper:.1f}', f'{paper_score:.1f}%']
    rows.append(row)
  for name in result.skipped or {}:
    rows.append([name, '0', 'skipped', ''] + ([''] * 2 if column else []))
  lines = [tabulate.tabulate(
      rows, headers=header, tablefmt='simple',
      colalign=['left'] + ['right'] * (len(header) - 1),
      disable_numparse=True), '']
  if column:
    lines.append(f'paper: {title} (IMPALA paper, {suite.paper_table})')
  if result.max_episode_frames:
    lines.append(f'NOTE: episodes capped at {result.max_episode_frames} '
                 'frames (protocol: 108000); returns are not comparable with '
                 "the paper's.")
  if result.skipped:
    lines.append(f'Skipped, because they cannot run on this machine (no '
                 f'score, no {suite.title} headline):')
    lines += [f'  {name}: {why}' for name, why in result.skipped.items()]
  if result.suite_score is not None:
    paper_score = scoring.paper_suite_score(suite, column)
    (head_title, head), (other_title, other) = suite.statistics[:2]
    s = result.suite_score
    lines.append(f'{suite.title} {head_title.lower()} score: '
                 f'{getattr(s, head):.1f}%  ({other_title.lower()} '
                 f'{getattr(s, other):.1f}%; paper {title}: '
                 f'{getattr(paper_score, head):.1f}%)')
  elif len(result.human_normalized) == 1:
    (name, score), = result.human_normalized.items()
    lines.append(f'{name}: human-normalised score {score:.1f}%')
  lines.append(f'{sum(map(len, result.episodes.values()))} episodes in '
               f'{result.elapsed_s:.0f}s; checkpoint: '
               f'{result.checkpoint or "none (untrained agent)"}')
  return '\n'.join(lines)


def parse_args(argv=None):
  parser = argparse.ArgumentParser(
      prog='python -m scalable_agent.evaluate',
      description=__doc__.split('\n')[0],
      formatter_class=argparse.RawDescriptionHelpFormatter,
      epilog='Example: python -m scalable_agent.evaluate --level=atari57 '
      '--checkpoint=runs/atari57 --episodes=10 --output=eval/atari57')
  add = parser.add_argument
  add('--level', required=True,
      help='atari57, dmlab30, an Atari game (pong) or a DMLab-30 level.')
  add('--checkpoint', required=True,
      help="A run's logdir, a checkpoint prefix (<logdir>/checkpoints/"
      "ckpt-N), or 'none' for a fresh untrained agent.")
  add('--episodes', type=int, default=10,
      help='Finished episodes per level (paper: 200 Atari, 500 DMLab).')
  add('--num_workers', type=int, default=2,
      help='Worker processes (0: evaluate in this process).')
  add('--torso', default=None, choices=['shallow', 'deep', 'nature', 'mlp'],
      help="The checkpoint's torso (default: the suite's: shallow Atari, "
      'deep DMLab).')
  add('--output', default=None,
      help='Directory for scores.csv and scores.json (default: '
      'eval/<level>).')
  add('--seed', type=int, default=0)
  add('--envs_per_level', type=int, default=None,
      help='Environments played at once per level (default: '
      f'min(episodes, {DEFAULT_ENVS_PER_LEVEL})).')
  add('--max_episode_frames', type=int, default=None,
      help='Atari only: frame cap of an episode for quick runs (protocol: '
      '108000). Returns are then not comparable with the paper.')
  add('--dmlab_dataset_path', '--dataset_path', dest='dataset_path',
      default=None,
      help='DMLab psychlab dataset (Brady, Konkle, Oliva 2008).')
  add('--level_cache_dir', default=None,
      help='DMLab compiled-map cache directory.')
  add('--only_levels', default=None,
      help='Comma-separated levels of a multi-task --level to evaluate '
      '(e.g. pong,breakout of atari57); default all. No suite headline then.')
  add('--no_progress', action='store_true', help='No progress bar.')
  console.add_flags(parser)
  return parser.parse_args(argv)


def main(argv=None):
  args = parse_args(argv)
  console.setup(args.tf_logs)
  output = args.output or os.path.join('eval', args.level.replace('/', '_'))
  try:
    evaluate(args.level, checkpoint=args.checkpoint, episodes=args.episodes,
             num_workers=args.num_workers, torso=args.torso,
             output_dir=output, seed=args.seed,
             envs_per_level=args.envs_per_level,
             max_episode_frames=args.max_episode_frames,
             dataset_path=args.dataset_path,
             level_cache_dir=args.level_cache_dir,
             only_levels=(args.only_levels.split(',') if args.only_levels
                          else None),
             progress=not args.no_progress, tf_logs=args.tf_logs)
  except (CheckpointError, ValueError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  print(f'Scores written to {os.path.join(output, "scores.csv")} and '
        f'{os.path.join(output, "scores.json")}.')
  return 0


if __name__ == '__main__':
  sys.exit(main())
