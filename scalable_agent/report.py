"""Paper-style tables and plots from evaluation score files and training logs.

    python -m scalable_agent.report eval/atari57/scores.json \\
        [more/scores.json ...] [--logdir runs/atari57 ...] --output=report/

Writes to `--output`:

  report.md, report.tex   per level: random and human reference returns, our
                          mean return and human-normalised score (one pair of
                          columns per score file), the IMPALA paper's returns
                          (Atari-57, Table C.1: shallow experts, deep experts,
                          deep multi-task; DMLab-30, Table B.1: IMPALA-Experts
                          deep, IMPALA deep PBT); then the headline rows
                          (Atari-57: median and mean; DMLab-30: mean capped
                          and uncapped) for ours and for the paper's columns,
                          all computed by `scoring` from the tables.
  human_normalized.png    per-level human-normalised score, ours beside one
                          of the paper's columns (horizontal bars; Atari's
                          range, from below random to 10^4 %, on a symmetric
                          log axis).
  learning_curve_suite.png, learning_curves.png
                          with --logdir: the suite score
                          (`human_normalized_score/suite`) and every level's
                          `episode_return/<level>` over environment frames,
                          read from the runs' TensorBoard event files.

Score files are what `python -m scalable_agent.evaluate` writes
(scores.json); only their episode returns are used, every score is
recomputed here, so a report never disagrees with `scoring`.

The reference tables and the paper's columns are the suites' own
(`suites.Suite.references`, `Suite.paper_columns`). This module reads the
training logs and puts the report together; the tables are laid out by
`report_tables` (with `tabulate`), the plots drawn by `report_plots`, and
score files read by `score_files`.
"""

import argparse
import collections
import csv
import os
import sys

import numpy as np

from scalable_agent import console
from scalable_agent import pbt
from scalable_agent import report_plots
from scalable_agent import report_tables
from scalable_agent import score_files as score_files_lib
from scalable_agent import scoring

# Headline numbers of one column of the table (ours or the paper's).
#   label: column title; suite_score: `scoring.SuiteScore` or None when the
#   column does not cover every level.
Summary = collections.namedtuple('Summary', 'label suite_score')

# What `make_report` wrote and computed.
#   summaries: list of `Summary`, ours (one per score file) then the paper's.
#   paths: dict kind -> file written ('markdown', 'latex', 'bars',
#     'suite_curve', 'curves').
ReportResult = collections.namedtuple('ReportResult', 'summaries paths')

# Scalars read from a TensorBoard log: steps int64 [n], values float [n].
Series = collections.namedtuple('Series', 'steps values')


# Training logs.


def read_scalars(logdir):
  """Scalars of the TensorBoard event files in `logdir`.

  TF2's `tf.summary.scalar` writes tensor summaries (plugin 'scalars'), TF1's
  simple values; both are read.

  Returns:
    dict tag -> `Series`, sorted by step.

  Raises:
    ValueError: `logdir` has no event files.
  """
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top
  from tensorboard.util import tensor_util  # pylint: disable=g-import-not-at-top
  if not os.path.isdir(logdir) or not any(
      name.startswith('events.') for name in os.listdir(logdir)):
    raise ValueError(f'No TensorBoard event files in {logdir!r}; pass the '
                     'run\'s --logdir (where training writes events.out.*).')
  accumulator = event_accumulator.EventAccumulator(
      logdir, size_guidance={event_accumulator.TENSORS: 0,
                             event_accumulator.SCALARS: 0})
  accumulator.Reload()
  points = collections.defaultdict(list)
  tags = accumulator.Tags()
  for tag in tags.get(event_accumulator.TENSORS, []):
    if accumulator.SummaryMetadata(tag).plugin_data.plugin_name != 'scalars':
      continue
    for event in accumulator.Tensors(tag):
      value = tensor_util.make_ndarray(event.tensor_proto)
      points[tag].append((event.step, float(np.asarray(value).reshape(-1)[0])))
  for tag in tags.get(event_accumulator.SCALARS, []):
    points[tag] += [(e.step, float(e.value)) for e in accumulator.Scalars(tag)]
  result = {}
  for tag, pairs in points.items():
    pairs.sort(key=lambda p: p[0])
    result[tag] = Series(np.array([p[0] for p in pairs], np.int64),
                         np.array([p[1] for p in pairs], np.float64))
  return result


# Training scalars exported to learning_curves.csv, by tag prefix.
CSV_TAG_PREFIXES = ('episode_return/', 'episode_length/',
                    'human_normalized_score/', 'throughput/', 'learner/')


def write_curves_csv(runs, path):
  """Writes the runs' training scalars as CSV rows (run, tag, frames, value).

  Args:
    runs: list of (label, dict tag -> Series), see `read_scalars`.
    path: the CSV file.

  Returns:
    path.
  """
  with open(path, 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(['run', 'tag', 'frames', 'value'])
    for label, scalars in runs:
      for tag in sorted(scalars):
        if tag.startswith(CSV_TAG_PREFIXES):
          series = scalars[tag]
          for step, value in zip(series.steps, series.values):
            writer.writerow([label, tag, int(step), f'{float(value):.6g}'])
  return path


# The whole report.


def make_report(score_paths, output_dir, logdirs=(), labels=None,
                run_labels=None, paper_column=None):
  """Writes the report; see the module docstring.

  Args:
    score_paths: scores.json files of one suite (each a column group).
    output_dir: created if missing.
    logdirs: training runs' logdirs, for learning curves.
    labels: column titles of the score files (default: their directory
      names).
    run_labels: legend labels of the runs (default: logdir names).
    paper_column: the paper column of the bar chart (default: the one
      matching the first score file, see `default_paper_column`).

  Returns:
    `ReportResult`.
  """
  if not score_paths and not logdirs:
    raise ValueError('Nothing to report: give score files and/or --logdir.')
  if labels and len(labels) != len(score_paths):
    raise ValueError(f'{len(labels)} labels for {len(score_paths)} score '
                     'files.')
  os.makedirs(output_dir, exist_ok=True)
  score_files = score_files_lib.unique_labels([
      score_files_lib.load_score_file(p, labels[i] if labels else None)
      for i, p in enumerate(score_paths)])
  names = sorted({f.suite.name for f in score_files})
  if len(names) > 1:
    raise ValueError(f'Score files of several suites ({", ".join(names)}): '
                     'make one report per suite.')
  suite = score_files[0].suite if score_files else None
  paths = {}
  summaries = []
  sections = ['# Evaluation report', '']
  latex = []
  if score_files:
    first = score_files[0]
    paper_column = paper_column or suite.default_paper_column(
        multi_task=len(first.episodes) > 1, torso=first.torso)
    suite.paper_column_title(paper_column)  # Validates.
    table = report_tables.build_table(suite, score_files)
    summaries = [Summary(f.label, f.suite_score) for f in score_files]
    summaries += [Summary(f'paper: {c.title}',
                          scoring.paper_suite_score(suite, c.key))
                  for c in suite.paper_columns]
    paths['bars'] = report_plots.plot_human_normalized(
        suite, score_files, paper_column,
        os.path.join(output_dir, 'human_normalized.png'))
    sections += [_headline_text(suite, summaries), '',
                 report_tables.markdown_table(table),
                 '![Human-normalised score per level](human_normalized.png)',
                 '']
    latex.append(report_tables.latex_table(table))
  if logdirs:
    if run_labels and len(run_labels) != len(logdirs):
      raise ValueError(f'{len(run_labels)} run labels for {len(logdirs)} '
                       'logdirs.')
    runs = [(run_labels[i] if run_labels else
             os.path.basename(os.path.abspath(d)), read_scalars(d))
            for i, d in enumerate(logdirs)]
    curve_paths = report_plots.plot_learning_curves(runs, output_dir, suite)
    paths.update(curve_paths)
    paths['curves_csv'] = write_curves_csv(
        runs, os.path.join(output_dir, 'learning_curves.csv'))
    sections += ['## Training curves', '']
    if not curve_paths:
      sections += ['The logs hold no `episode_return/*` or '
                   '`human_normalized_score/suite` scalars.', '']
    for kind, caption in (('suite_curve', 'Suite score during training'),
                          ('curves', 'Episode return per level')):
      if kind in curve_paths:
        sections += [f'![{caption}]({os.path.basename(curve_paths[kind])})',
                     '']
  paths['markdown'] = os.path.join(output_dir, 'report.md')
  with open(paths['markdown'], 'w') as f:
    f.write('\n'.join(sections))
  if latex:
    paths['latex'] = os.path.join(output_dir, 'report.tex')
    with open(paths['latex'], 'w') as f:
      f.write('\n'.join(latex))
  return ReportResult(summaries, paths)


def _headline_text(suite, summaries):
  title, field = suite.statistics[0]
  parts = []
  for summary in summaries:
    value = ('n/a (not all levels)' if summary.suite_score is None
             else f'{getattr(summary.suite_score, field):.1f}%')
    parts.append(f'{summary.label} {value}')
  return f'{suite.title} {title.lower()} score: ' + '; '.join(parts) + '.'


def parse_args(argv=None):
  parser = argparse.ArgumentParser(
      prog='python -m scalable_agent.report',
      description=__doc__.split('\n')[0],
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('scores', nargs='*',
                      help='scores.json files written by '
                      'python -m scalable_agent.evaluate (one suite).')
  parser.add_argument('--logdir', action='append', default=[],
                      help="A training run's logdir (repeatable), for "
                      'learning curves.')
  parser.add_argument('--labels', nargs='+', default=None,
                      help='Column titles of the score files.')
  parser.add_argument('--run_labels', nargs='+', default=None,
                      help='Legend labels of the --logdir runs.')
  parser.add_argument('--paper_column', default=None,
                      help='Paper column of the bar chart: '
                      'impala_shallow_experts, impala_deep_experts, '
                      'impala_deep_multitask (Atari), impala_experts_deep, '
                      'impala_deep_pbt (DMLab). Default: the matching one.')
  parser.add_argument('--pbt', default=None,
                      help='A PBT population\'s directory (the --logdir of '
                      '--pbt_population, or the --pbt_dir of a cluster): '
                      'draws its fitness curves, exploits and '
                      'hyperparameters (scalable_agent/pbt.py).')
  parser.add_argument('--output', default='report',
                      help='Output directory.')
  console.add_flags(parser)
  return parser.parse_args(argv)


def main(argv=None):
  args = parse_args(argv)
  # Reading event files loads TensorFlow through TensorBoard: quietly.
  console.setup(args.tf_logs,
                import_tensorflow=bool(args.logdir or args.pbt))
  try:
    result = ReportResult([], {})
    if args.scores or args.logdir or not args.pbt:
      result = make_report(args.scores, args.output, logdirs=args.logdir,
                           labels=args.labels, run_labels=args.run_labels,
                           paper_column=args.paper_column)
    if args.pbt:
      result.paths.update({f'pbt_{kind}': path for kind, path in
                           pbt.plot_population(args.pbt, args.output).items()})
  except (ValueError, OSError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  for summary in result.summaries:
    if summary.suite_score is not None:
      s = summary.suite_score
      print(f'{summary.label}: headline {s.headline:.1f}%  (median '
            f'{s.median:.1f}%, mean {s.mean:.1f}%, mean capped '
            f'{s.mean_capped:.1f}%)')
  for kind, path in sorted(result.paths.items()):
    print(f'{kind}: {path}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
