"""Learning curves: seeded training runs, and several runs compared.

    # One seeded run: trains --level for --frames environment frames in its
    # own logdir (resuming it if it is there), then writes curve.csv and
    # curve.png into it. Flags after -- go to `scalable_agent` unchanged.
    python -m scalable_agent.learning_curves run --level=pong --frames=5e6 \\
        --seed=0 --logdir=runs/ab/paper -- --hparams=paper

    # Several runs in one PNG, with a table of the return at fixed frames:
    python -m scalable_agent.learning_curves compare runs/ab/paper \\
        runs/ab/fast --at 2.5e6 5e6 1e7 --output docs/learning

A curve is what training logs (`report.read_scalars`): the mean return of
the last 100 training episodes (`episode_return/<level>`) against
environment frames and agent steps (frames / action repeats), plus, where
the run had an evaluator (`periodic_evaluation`), the greedy and sampled
evaluation returns. `compare` writes:

    curves.csv     run, frames, agent_steps, kind, return (kind: training,
                   greedy, sampled)
    curves.png     the training returns of all runs over frames (solid), the
                   greedy evaluation returns dashed
    returns.md     per run: the training return at each --at frame count
                   (the last value logged up to it, within 1%; '-' if the
                   run stopped earlier), then the greedy evaluation return
"""

import argparse
import collections
import csv
import logging
import os
import subprocess
import sys

import numpy as np

from scalable_agent import console
from scalable_agent import report
from scalable_agent import report_plots

# The kinds of return a curve may hold, and their TensorBoard tags (the
# training one is per level: episode_return/<level>).
EVALUATION_TAGS = {'greedy': 'evaluation/greedy_return',
                   'sampled': 'evaluation/sampled_return'}

# One run as compared: its legend label, {kind: report.Series of (frames,
# return)} and the frames per agent step it logged (4 for Atari, 1 for
# CartPole).
Run = collections.namedtuple('Run', 'label curves action_repeats')


def read_run(logdir, label=None):
  """A `Run` from a training logdir (label: its directory name if None).

  Raises:
    ValueError: the run logged no episode return, or several levels.
  """
  scalars = report.read_scalars(logdir)
  levels = [t for t in scalars if t.startswith('episode_return/')]
  if len(levels) != 1:
    raise ValueError(
        f'{logdir!r} has {len(levels)} episode_return/<level> series '
        f'({levels}); learning curves compare single-level runs.')
  curves = {'training': scalars[levels[0]]}
  evaluation_dir = os.path.join(logdir, 'evaluation')
  if os.path.isdir(evaluation_dir):
    evaluation = report.read_scalars(evaluation_dir)
    for kind, tag in EVALUATION_TAGS.items():
      if tag in evaluation:
        curves[kind] = evaluation[tag]
  # The learner logs agent steps beside frames (learner/agent_steps); runs
  # from before that tag count as Atari's 4 frames per step.
  action_repeats = 4
  agent_steps = scalars.get('learner/agent_steps')
  if agent_steps is not None and agent_steps.values[-1] > 0:
    action_repeats = int(round(agent_steps.steps[-1]
                               / agent_steps.values[-1]))
  label = label or os.path.basename(os.path.normpath(logdir))
  return Run(label, curves, action_repeats)


def return_at(series, frames):
  """The last value logged up to `frames`, or None if there is none near
  it. Logging is periodic, so "at 5M" accepts points within 1% after 5M (a
  checkpoint at 5.002M) and up to 5% before it (a run stopped at 4.99M);
  a sparse series (evaluations at 5M and 10M) has nothing "at 8M"."""
  if series is None or not len(series.steps):
    return None
  index = np.searchsorted(series.steps, 1.01 * frames, side='right') - 1
  if index < 0 or series.steps[index] < 0.95 * frames:
    return None
  return float(series.values[index])


def write_csv(runs, path):
  """runs: list of `Run`. Writes curves.csv rows."""
  with open(path, 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(['run', 'frames', 'agent_steps', 'kind', 'return'])
    for run in runs:
      for kind, series in run.curves.items():
        for frames, value in zip(series.steps, series.values):
          writer.writerow([run.label, int(frames),
                           int(frames) // run.action_repeats, kind,
                           f'{float(value):.4g}'])
  return path


def plot(runs, path, title='Mean return of the last 100 training episodes'):
  """One PNG: each run's training curve (solid) and greedy evaluation
  (dashed, same colour), over environment frames."""
  plt = report_plots.pyplot()
  figure, axes = plt.subplots(figsize=(8, 4.8))
  for index, run in enumerate(runs):
    colour = f'C{index % 10}'
    series = run.curves['training']
    axes.plot(series.steps, series.values, color=colour, label=run.label)
    if 'greedy' in run.curves:
      greedy = run.curves['greedy']
      axes.plot(greedy.steps, greedy.values, color=colour, linestyle='--',
                marker='.', linewidth=0.8)
  axes.set_xlabel('environment frames (agent steps x 4)')
  axes.set_ylabel('return')
  axes.ticklabel_format(axis='x', style='sci', scilimits=(0, 0))
  axes.grid(alpha=0.3)
  axes.legend(fontsize=7, loc='upper left')
  axes.set_title(title + '\n(dashed: greedy evaluation of checkpoints)',
                 fontsize=9)
  figure.tight_layout()
  figure.savefig(path, dpi=90)
  plt.close(figure)
  return path


def returns_table(runs, at):
  """Markdown: per run, the training return at each frame count of `at`,
  then the greedy evaluation return there."""
  def cell(value):
    return '-' if value is None else f'{value:+.1f}'

  def frames_label(frames):
    return f'{frames / 1e6:g}M'

  header = (['run'] + [f'train {frames_label(f)}' for f in at]
            + [f'greedy {frames_label(f)}' for f in at])
  lines = ['| ' + ' | '.join(header) + ' |',
           '|' + '---|' * len(header)]
  for run in runs:
    cells = [cell(return_at(run.curves['training'], f)) for f in at]
    cells += [cell(return_at(run.curves.get('greedy'), f)) for f in at]
    lines.append('| ' + ' | '.join([run.label] + cells) + ' |')
  return '\n'.join(lines) + '\n'


def compare(logdirs, output_dir, at=(2.5e6, 5e6, 1e7), labels=None):
  """Writes curves.csv, curves.png and returns.md; returns their paths."""
  if labels and len(labels) != len(logdirs):
    raise ValueError(f'{len(labels)} labels for {len(logdirs)} runs.')
  os.makedirs(output_dir, exist_ok=True)
  runs = [read_run(d, labels[i] if labels else None)
          for i, d in enumerate(logdirs)]
  paths = {
      'csv': write_csv(runs, os.path.join(output_dir, 'curves.csv')),
      'png': plot(runs, os.path.join(output_dir, 'curves.png')),
      'table': os.path.join(output_dir, 'returns.md'),
  }
  with open(paths['table'], 'w') as f:
    f.write(returns_table(runs, at))
  return paths


def run(level, frames, logdir, seed=0, training_flags=()):
  """Trains `level` for `frames` frames in `logdir`, then writes its curve.

  Returns:
    compare()'s paths for this one run (written into logdir).
  """
  flags = [f'--level={level}', f'--seed={seed}', f'--logdir={logdir}',
           f'--stop_at_frames={frames}', *training_flags]
  logging.getLogger('learning_curves').info('scalable_agent %s',
                                            ' '.join(flags))
  result = subprocess.run(
      [sys.executable, '-m', 'scalable_agent.main'] + flags, check=False)
  if result.returncode:
    raise SystemExit(f'[learning_curves] training exited with status '
                     f'{result.returncode}; its logdir {logdir} keeps what '
                     'it wrote (run again to resume).')
  return compare([logdir], logdir)


def parse_args(argv=None):
  parser = argparse.ArgumentParser(
      prog='python -m scalable_agent.learning_curves',
      description=__doc__.split('\n')[0],
      formatter_class=argparse.RawDescriptionHelpFormatter)
  commands = parser.add_subparsers(dest='command', required=True)
  run_parser = commands.add_parser('run', help='one seeded training run')
  run_parser.add_argument('--level', default='pong')
  run_parser.add_argument('--frames', type=float, required=True)
  run_parser.add_argument('--seed', type=int, default=0)
  run_parser.add_argument('--logdir', required=True)
  run_parser.add_argument('training_flags', nargs='*',
                          help='after --: flags for scalable_agent')
  compare_parser = commands.add_parser('compare', help='overlay runs')
  compare_parser.add_argument('logdirs', nargs='+')
  compare_parser.add_argument('--at', type=float, nargs='+',
                              default=[2.5e6, 5e6, 1e7])
  compare_parser.add_argument('--labels', nargs='+', default=None)
  compare_parser.add_argument('--output', required=True)
  console.add_flags(parser)
  return parser.parse_args(argv)


def main(argv=None):
  args = parse_args(argv)
  # Reading event files loads TensorFlow through TensorBoard: quietly.
  console.setup(args.tf_logs)
  try:
    if args.command == 'run':
      paths = run(args.level, args.frames, args.logdir, args.seed,
                  args.training_flags)
    else:
      paths = compare(args.logdirs, args.output, args.at, args.labels)
  except ValueError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  for kind, path in sorted(paths.items()):
    print(f'{kind}: {path}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
