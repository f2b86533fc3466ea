"""The paper's Table 2: off-policy corrections, without and with replay.

    # The grid (4 corrections x without/with replay) on the paper's five
    # DMLab levels, 3 seeds each, 2 runs at a time; then the table:
    python -m scalable_agent.table2 run --frames=1e9 --seeds 0 1 2 \\
        --jobs=2 --logdir=runs/table2
    python -m scalable_agent.table2 table runs/table2 --output docs/table2

    # The same grid on an Atari game; flags after -- go to every run:
    python -m scalable_agent.table2 run --levels pong --frames=5e6 \\
        --logdir=runs/table2_pong -- --queue_capacity=64

Each run is `learning_curves.run` (one seeded `scalable_agent` training run
in its own logdir, resumed if it is there) with `--off_policy_correction`
and, for the replay half, `--replay_capacity` (the paper's 10,000 unrolls
unless --replay_capacity says otherwise) and the paper's 50% replayed per
batch. Logdirs: <logdir>/<level>/<correction>_<replay|no_replay>/seed_<n>.

`table` reads every run under a directory and writes:

    table2.md, table2.tex   the paper's layout: a row per correction, without
                            then with replay; per level our final return
                            (the mean of the last 100 training episodes at
                            the end of the run; mean over the best --top
                            seeds, as the paper averages its top 3) and the
                            paper's, where the level is one of its five;
                            and the mean policy lag of the row's runs
    table2.png              the same as bars, the paper's as markers
    runs.csv                one line per run: return, frames, policy lag,
                            fraction of importance weights above 1,
                            behaviour-target KL
"""

import argparse
import collections
import concurrent.futures
import csv
import logging
import os
import sys

import numpy as np

from scalable_agent import console
from scalable_agent import corrections
from scalable_agent import learning_curves
from scalable_agent import report
from scalable_agent import report_plots
from scalable_agent import report_tables

# The paper's five DMLab tasks, in its column order (Table 2: tasks 1-5).
PAPER_LEVELS = ('rooms_watermaze', 'rooms_keys_doors_puzzle',
                'lasertag_three_opponents_small',
                'explore_goal_locations_small', 'seekavoid_arena_01')
PAPER_REPLAY_CAPACITY = 10000
CORRECTION_TITLES = {'vtrace': 'V-trace', 'one_step': '1-Step',
                     'epsilon': 'ε-correction', 'none': 'No-correction'}
REPLAY_TITLES = {False: 'Without replay', True: 'With replay'}

# One run of the grid.
Cell = collections.namedtuple('Cell', 'level correction replay seed')
# What `table` reads from a run's logs. policy_lag: mean over the run, in
# learner updates; rho_above_one: mean fraction of steps with pi/mu > 1;
# behaviour_kl: mean KL(mu || pi) per step, nats.
RunResult = collections.namedtuple(
    'RunResult',
    'cell final_return frames policy_lag rho_above_one behaviour_kl')


def paper_table():
  """{(correction, replay bool, level): the paper's return}."""
  import dmlab30  # pylint: disable=g-import-not-at-top
  path = os.path.join(os.path.dirname(dmlab30.__file__), 'paper_table2.csv')
  with open(path, newline='') as f:
    rows = list(csv.DictReader(f))
  return {(row['correction'], row['replay'] == 'yes', level): float(
      row[level]) for row in rows for level in PAPER_LEVELS}


def grid(levels, corrections_=corrections.VARIANTS, replays=(False, True),
         seeds=(0,)):
  """Cells in run order: level, replay, correction, seed."""
  return [Cell(level, correction, replay, seed)
          for level in levels for replay in replays
          for correction in corrections_ for seed in seeds]


def run_dir(root, cell):
  replay = 'replay' if cell.replay else 'no_replay'
  return os.path.join(root, cell.level, f'{cell.correction}_{replay}',
                      f'seed_{cell.seed}')


def cell_of(root, logdir):
  """The `Cell` a logdir under `root` holds (inverse of `run_dir`)."""
  level, variant, seed = os.path.relpath(logdir, root).split(os.sep)
  replay = not variant.endswith('_no_replay')
  correction = variant[:-len('_no_replay' if not replay else '_replay')]
  return Cell(level, correction, replay, int(seed[len('seed_'):]))


def run_flags(cell, replay_capacity):
  flags = [f'--off_policy_correction={cell.correction}']
  if cell.replay:
    return flags + [f'--replay_capacity={replay_capacity}',
                    '--replay_fraction=0.5']
  # Explicitly off: one Atari game's defaults replay (learner.ATARI_DEFAULTS).
  return flags + ['--replay_capacity=0']


def run_grid(cells, root, frames, replay_capacity=PAPER_REPLAY_CAPACITY,
             jobs=1, training_flags=()):
  """Runs (or resumes) every cell; `jobs` at a time.

  Returns:
    list of the cells whose run failed (their logdirs keep what they wrote;
    running the grid again resumes them).
  """
  log = logging.getLogger('table2')

  def one(cell):
    learning_curves.run(cell.level, frames, run_dir(root, cell), cell.seed,
                        run_flags(cell, replay_capacity)
                        + list(training_flags))

  failed = []
  pool = concurrent.futures.ThreadPoolExecutor(max_workers=jobs)
  futures = {pool.submit(one, cell): cell for cell in cells}
  try:
    for future in concurrent.futures.as_completed(futures):
      cell = futures[future]
      try:
        future.result()
        log.info('done: %s', run_dir(root, cell))
      except (SystemExit, ValueError) as e:
        log.error('failed: %s (%s)', run_dir(root, cell), e)
        failed.append(cell)
  finally:
    # Ctrl-C: the runs under way get it too (same process group) and
    # checkpoint; the ones not started yet are not started.
    pool.shutdown(wait=True, cancel_futures=True)
  return failed


def _mean(series):
  return float(np.mean(series.values)) if series is not None and len(
      series.values) else float('nan')


def read_result(root, logdir):
  """`RunResult` of one run's TensorBoard logs."""
  cell = cell_of(root, logdir)
  scalars = report.read_scalars(logdir)
  returns = [s for tag, s in scalars.items()
             if tag.startswith('episode_return/')]
  if len(returns) != 1:
    raise ValueError(f'{logdir!r} logged {len(returns)} levels\' returns; '
                     'Table 2 runs train one level.')
  return RunResult(
      cell, float(returns[0].values[-1]), int(returns[0].steps[-1]),
      _mean(scalars.get('throughput/policy_lag_updates')),
      _mean(scalars.get('learner/rho_clipped_fraction')),
      _mean(scalars.get('learner/behaviour_kl')))


def read_results(root):
  """Every run under `root` (directories holding TensorBoard events)."""
  results = []
  for directory, _, files in sorted(os.walk(root)):
    if (any(f.startswith('events.') for f in files)
        and os.path.relpath(directory, root).count(os.sep) == 2):
      results.append(read_result(root, directory))
  if not results:
    raise ValueError(f'No Table 2 runs under {root!r} (expected '
                     '<level>/<correction>_<replay|no_replay>/seed_<n>).')
  return results


def top_mean(values, top):
  """Mean of the `top` largest values (all of them if fewer)."""
  return float(np.mean(sorted(values, reverse=True)[:top]))


def build_table(results, top=3):
  """The paper's Table 2 layout as a `report_tables.Table`."""
  levels = list(dict.fromkeys(
      [l for l in PAPER_LEVELS if any(r.cell.level == l for r in results)]
      + [r.cell.level for r in results]))
  paper = paper_table()
  by_row = collections.defaultdict(list)
  for r in results:
    by_row[(r.cell.replay, r.cell.correction)].append(r)
  header = ['Replay', 'Correction']
  for level in levels:
    header.append(f'{level} (ours)')
    if level in PAPER_LEVELS:
      header.append(f'{level} (paper)')
  header.append('policy lag (updates)')
  rows = []
  for replay in (False, True):
    for correction in corrections.VARIANTS:
      runs = by_row.get((replay, correction))
      if not runs:
        continue
      row = [REPLAY_TITLES[replay], CORRECTION_TITLES[correction]]
      for level in levels:
        returns = [r.final_return for r in runs if r.cell.level == level]
        row.append(f'{top_mean(returns, top):.1f}' if returns else '')
        if level in PAPER_LEVELS:
          row.append(f'{paper[(correction, replay, level)]:.1f}')
      row.append(f'{np.nanmean([r.policy_lag for r in runs]):.1f}')
      rows.append(row)
  seeds = sorted({r.cell.seed for r in results})
  frames = sorted({r.frames for r in results})
  notes = [
      f'Ours: the mean return of the last 100 training episodes at the end '
      f'of each run, averaged over the best {min(top, len(seeds))} of '
      f'{len(seeds)} seed(s) '
      f'({", ".join(map(str, seeds))}); runs ended at '
      f'{frames[0]:,}-{frames[-1]:,} frames.',
      'Paper: IMPALA (Espeholt et al. 2018) Table 2, DMLab, the average '
      'final return over its 3 best runs. Replay: half of each batch drawn '
      'uniformly from the last 10,000 unrolls (ours: --replay_capacity as '
      'run). Policy lag: learner updates between the policy that acted and '
      'the one that learns, mean over the row\'s runs (replayed unrolls '
      'included).',
  ]
  return report_tables.Table('Off-policy corrections (paper Table 2)',
                             header, rows, [], notes)


def write_runs_csv(results, path):
  with open(path, 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(['level', 'correction', 'replay', 'seed', 'final_return',
                     'frames', 'policy_lag', 'rho_above_one',
                     'behaviour_kl'])
    for r in sorted(results, key=lambda r: tuple(map(str, r.cell))):
      writer.writerow([r.cell.level, r.cell.correction,
                       'yes' if r.cell.replay else 'no', r.cell.seed,
                       f'{r.final_return:.4g}', r.frames,
                       f'{r.policy_lag:.4g}', f'{r.rho_above_one:.4g}',
                       f'{r.behaviour_kl:.4g}'])
  return path


def plot(results, path, top=3):
  """Per level: bars of our return per correction, without and with
  replay; the paper's returns as black markers where it has the level."""
  plt = report_plots.pyplot()
  levels = list(dict.fromkeys(r.cell.level for r in results))
  paper = paper_table()
  figure, axes = plt.subplots(1, len(levels), squeeze=False,
                              figsize=(4.2 * len(levels), 3.6))
  x = np.arange(len(corrections.VARIANTS))
  for axis, level in zip(axes[0], levels):
    for offset, replay in ((-0.2, False), (0.2, True)):
      values = []
      for correction in corrections.VARIANTS:
        returns = [r.final_return for r in results
                   if (r.cell.level, r.cell.correction, r.cell.replay)
                   == (level, correction, replay)]
        values.append(top_mean(returns, top) if returns else np.nan)
      axis.bar(x + offset, values, width=0.38,
               label=REPLAY_TITLES[replay].lower(),
               color='C1' if replay else 'C0')
      if level in PAPER_LEVELS:
        axis.plot(x + offset, [paper[(c, replay, level)]
                               for c in corrections.VARIANTS],
                  'k_', markersize=12,
                  label='paper' if replay else None)
    axis.set_xticks(x)
    axis.set_xticklabels([CORRECTION_TITLES[c] for c in corrections.VARIANTS],
                         fontsize=7)
    axis.set_title(level, fontsize=9)
    axis.axhline(0, color='grey', linewidth=0.5)
    axis.grid(axis='y', alpha=0.3)
  axes[0][0].set_ylabel('final return')
  axes[0][0].legend(fontsize=7)
  figure.tight_layout()
  figure.savefig(path, dpi=90)
  plt.close(figure)
  return path


def make_table(root, output_dir, top=3):
  """Writes table2.md, table2.tex, table2.png and runs.csv; returns paths."""
  results = read_results(root)
  os.makedirs(output_dir, exist_ok=True)
  table = build_table(results, top)
  paths = {'markdown': os.path.join(output_dir, 'table2.md'),
           'latex': os.path.join(output_dir, 'table2.tex')}
  with open(paths['markdown'], 'w') as f:
    f.write(report_tables.markdown_table(table))
  with open(paths['latex'], 'w') as f:
    f.write(report_tables.latex_table(table))
  paths['png'] = plot(results, os.path.join(output_dir, 'table2.png'), top)
  paths['csv'] = write_runs_csv(results, os.path.join(output_dir,
                                                       'runs.csv'))
  return paths


def parse_args(argv=None):
  parser = argparse.ArgumentParser(
      prog='python -m scalable_agent.table2',
      description=__doc__.split('\n')[0],
      formatter_class=argparse.RawDescriptionHelpFormatter)
  commands = parser.add_subparsers(dest='command', required=True)
  run_parser = commands.add_parser('run', help='run the grid')
  run_parser.add_argument('--levels', nargs='+', default=list(PAPER_LEVELS),
                          help="default: the paper's five DMLab levels")
  run_parser.add_argument('--corrections', nargs='+',
                          default=list(corrections.VARIANTS),
                          choices=corrections.VARIANTS)
  run_parser.add_argument('--replay', nargs='+', default=['no', 'yes'],
                          choices=['no', 'yes'])
  run_parser.add_argument('--seeds', type=int, nargs='+', default=[0])
  run_parser.add_argument('--frames', type=float, required=True,
                          help='environment frames per run')
  run_parser.add_argument('--replay_capacity', type=int,
                          default=PAPER_REPLAY_CAPACITY,
                          help='unrolls kept for replay (paper: 10000)')
  run_parser.add_argument('--jobs', type=int, default=1,
                          help='runs at a time (each is a learner and its '
                          'actors)')
  run_parser.add_argument('--logdir', required=True)
  run_parser.add_argument('training_flags', nargs='*',
                          help='after --: flags for every run')
  table_parser = commands.add_parser('table', help='write the table')
  table_parser.add_argument('root')
  table_parser.add_argument('--output', required=True)
  table_parser.add_argument('--top', type=int, default=3,
                            help='average the best N seeds (paper: 3)')
  console.add_flags(parser)
  args = parser.parse_args(argv)
  if args.command == 'run' and args.jobs < 1:
    parser.error(f'--jobs must be >= 1, got {args.jobs}.')
  if args.command == 'table' and args.top < 1:
    parser.error(f'--top must be >= 1, got {args.top}.')
  return args


def main(argv=None):
  args = parse_args(argv)
  console.setup(args.tf_logs)
  if args.command == 'run':
    cells = grid(args.levels, args.corrections,
                 [r == 'yes' for r in args.replay], args.seeds)
    failed = run_grid(cells, args.logdir, args.frames, args.replay_capacity,
                      args.jobs, args.training_flags)
    if failed:
      print(f'error: {len(failed)} of {len(cells)} runs failed (run again to '
            'resume them).', file=sys.stderr)
      return 1
    return 0
  try:
    paths = make_table(args.root, args.output, args.top)
  except ValueError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  for kind, path in sorted(paths.items()):
    print(f'{kind}: {path}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
