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
(`suites.Suite.references`, `Suite.paper_columns`).
"""

import argparse
import collections
import csv
import json
import math
import os
import sys

import numpy as np

from scalable_agent import scoring
from scalable_agent import suites

# One score file (scores.json of `evaluate`), as the report uses it.
#   path, label: file and its column title.
#   suite: its `suites.Suite` (one with reference scores); level: the
#     --level evaluated.
#   checkpoint, torso, max_episode_frames: from the file, for the notes.
#   episodes: dict level -> list of returns (reference names, suite order).
#   mean_return: dict level -> mean return.
#   suite_score: `scoring.SuiteScore` if every level is there, else None.
ScoreFile = collections.namedtuple(
    'ScoreFile', 'path label suite level checkpoint torso max_episode_frames '
    'episodes mean_return suite_score')

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


# Score files.


def _default_label(path):
  path = os.path.abspath(path)
  stem = os.path.splitext(os.path.basename(path))[0]
  if stem == 'scores':
    return os.path.basename(os.path.dirname(path)) or 'ours'
  return stem


def load_score_file(path, label=None):
  """Reads a scores.json of `evaluate` into a `ScoreFile`.

  Raises:
    ValueError: not a score file of a suite with reference scores.
  """
  with open(path) as f:
    try:
      data = json.load(f)
    except json.JSONDecodeError as e:
      raise ValueError(f'{path} is not a JSON score file: {e}.') from e
  if not isinstance(data, dict) or 'episodes' not in data:
    raise ValueError(f'{path} has no "episodes"; is it a scores.json written '
                     'by python -m scalable_agent.evaluate?')
  scored = [s.name for s in suites.all_suites() if s.references()]
  if data.get('suite') not in scored:
    raise ValueError(
        f'{path}: suite {data.get("suite")!r}; reports cover score files of '
        f'{" and ".join(scored)}.')
  suite = suites.get(data['suite'])
  references = suite.references()
  episodes = {}
  for name, returns in data['episodes'].items():
    name = suite.reference_name(name)
    if not returns:
      raise ValueError(f'{path}: no episode returns for {name!r}.')
    episodes[name] = [float(r) for r in returns]
  # Table order, whatever the file's.
  episodes = {n: episodes[n] for n in references if n in episodes}
  mean_return = {n: float(np.mean(r)) for n, r in episodes.items()}
  suite_score = (scoring.suite_score(suite, episodes)
                 if len(episodes) == len(references) else None)
  return ScoreFile(
      path=path, label=label or _default_label(path), suite=suite,
      level=data.get('level'), checkpoint=data.get('checkpoint'),
      torso=data.get('torso'),
      max_episode_frames=data.get('max_episode_frames'), episodes=episodes,
      mean_return=mean_return, suite_score=suite_score)


def _unique_labels(score_files):
  seen = collections.Counter()
  result = []
  for score_file in score_files:
    seen[score_file.label] += 1
    if seen[score_file.label] > 1:
      score_file = score_file._replace(
          label=f'{score_file.label} ({seen[score_file.label]})')
    result.append(score_file)
  return result


# Tables.

# A table independent of its format: header cells, level rows, summary rows;
# every cell already a string ('' for empty).
_Table = collections.namedtuple('_Table', 'title header rows summary notes')


def _format_return(value):
  return f'{value:,.1f}'


def _format_percent(value):
  return f'{value:.1f}%'


def build_table(suite, score_files):
  """Rows of the paper-style table for score files of one `suites.Suite`."""
  references = suite.references()
  columns = suite.paper_columns
  names = [n for n in references
           if any(n in f.episodes for f in score_files)]
  header = [suite.level_title, 'Random', 'Human']
  for f in score_files:
    header += [f'{f.label} return', f'{f.label} human-norm.']
  header += [c.title for c in columns]
  rows = []
  for name in names:
    ref = references[name]
    row = [name, _format_return(ref.random), _format_return(ref.human)]
    for f in score_files:
      if name in f.mean_return:
        score = scoring.human_normalized_score(f.mean_return[name],
                                               ref.random, ref.human)
        row += [_format_return(f.mean_return[name]), _format_percent(score)]
      else:
        row += ['', '']
    row += [_format_return(ref.paper[c.key]) for c in columns]
    rows.append(row)

  paper_scores = [scoring.paper_suite_score(suite, c.key) for c in columns]
  summary = []
  for title, field in suite.statistics:
    row = [title, '', '']
    for f in score_files:
      if f.suite_score is None:
        row += ['', f'n/a ({len(f.episodes)} of {len(references)})']
      else:
        row += ['', _format_percent(getattr(f.suite_score, field))]
    row += [_format_percent(getattr(s, field)) for s in paper_scores]
    summary.append(row)

  notes = []
  for f in score_files:
    counts = sorted({len(r) for r in f.episodes.values()})
    count_text = '-'.join(str(c) for c in (counts[0], counts[-1])
                          ) if len(counts) > 1 else str(counts[0])
    note = (f'{f.label}: --level={f.level}, torso {f.torso}, '
            f'{count_text} episodes per level, checkpoint '
            f'{f.checkpoint or "none (untrained agent)"}')
    if f.max_episode_frames:
      note += (f'; episodes capped at {f.max_episode_frames} frames '
               '(protocol: 108,000), not comparable with the paper')
    notes.append(note + '.')
  notes.append(
      f'Paper columns: IMPALA paper (Espeholt et al. 2018) '
      f'{suite.paper_table}; their headline rows are computed from those '
      'per-level returns. Human-normalised: 100 (return - random) / '
      '(human - random).')
  notes.append(suite.headline_note)
  title = f'{suite.title}: mean episode returns'
  return _Table(title, header, rows, summary, notes)


def markdown_table(table):
  """`_Table` -> Markdown (GitHub pipe table)."""
  def line(cells):
    return '| ' + ' | '.join(cells) + ' |'
  lines = [f'## {table.title}', '', line(table.header),
           '|' + '|'.join([':---'] + ['---:'] * (len(table.header) - 1))
           + '|']
  lines += [line(row) for row in table.rows]
  lines += [line([f'**{row[0]}**'] + [f'**{c}**' if c else '' for c in row[1:]])
            for row in table.summary]
  lines.append('')
  lines += [f'- {note}' for note in table.notes]
  return '\n'.join(lines) + '\n'


_LATEX_ESCAPES = {'\\': r'\textbackslash{}', '&': r'\&', '%': r'\%',
                  '$': r'\$', '#': r'\#', '_': r'\_', '{': r'\{', '}': r'\}',
                  '~': r'\textasciitilde{}', '^': r'\textasciicircum{}'}


def _latex_escape(text):
  escaped = ''.join(_LATEX_ESCAPES.get(c, c) for c in str(text))
  # '--level' would print as an en dash and 'level'.
  return escaped.replace('--', '-{}-')


def latex_table(table):
  """`_Table` -> a LaTeX table (needs \\usepackage{booktabs})."""
  spec = 'l' + 'r' * (len(table.header) - 1)
  def line(cells):
    return ' & '.join(_latex_escape(c) for c in cells) + r' \\'
  lines = [
      '% Generated by python -m scalable_agent.report; needs booktabs.',
      r'\begin{table}[t]', r'\centering', r'\scriptsize',
      rf'\begin{{tabular}}{{{spec}}}', r'\toprule', line(table.header),
      r'\midrule']
  lines += [line(row) for row in table.rows]
  lines.append(r'\midrule')
  lines += [line(row) for row in table.summary]
  lines += [r'\bottomrule', r'\end{tabular}',
            rf'\caption{{{_latex_escape(table.title)}. '
            + ' '.join(_latex_escape(n) for n in table.notes) + '}',
            r'\end{table}']
  return '\n'.join(lines) + '\n'


# Plots.


def _pyplot():
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')  # Files only; no display needed.
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def plot_human_normalized(suite, score_files, paper_column, path):
  """Horizontal bars: per-level human-normalised score, ours and the paper's.

  Atari scores span from below random to tens of thousands of percent: a
  symmetric log axis (linear within +-10%) keeps both ends readable. DMLab-30
  scores stay within a few hundred percent: linear. The axis follows the
  scores: symmetric log once one is beyond +-1000%.
  """
  plt = _pyplot()
  references = suite.references()
  names = [n for n in references if any(n in f.episodes for f in score_files)]
  title = suite.paper_column_title(paper_column)
  series = []
  for f in score_files:
    series.append((f.label, [
        scoring.human_normalized_score(f.mean_return[n], references[n].random,
                                       references[n].human)
        if n in f.mean_return else np.nan for n in names]))
  series.append((f'paper: {title}', [
      scoring.human_normalized_score(references[n].paper[paper_column],
                                     references[n].random, references[n].human)
      for n in names]))

  num_bars = len(series)
  bar_height = 0.8 / num_bars
  figure, axes = plt.subplots(
      figsize=(8.5, 1.6 + 0.1 * len(names) * (num_bars + 1)))
  positions = np.arange(len(names))
  colours = plt.rcParams['axes.prop_cycle'].by_key()['color']
  for i, (label, values) in enumerate(series):
    is_paper = i == num_bars - 1
    axes.barh(positions + (i - (num_bars - 1) / 2) * bar_height, values,
              height=bar_height, label=label,
              color='0.6' if is_paper else colours[i % len(colours)])
  axes.set_yticks(positions)
  axes.set_yticklabels(names, fontsize=8)
  axes.set_ylim(len(names) - 0.5, -0.5)  # First level at the top.
  axes.axvline(0, color='black', linewidth=0.8)
  axes.axvline(100, color='black', linewidth=0.8, linestyle='--')
  finite = np.concatenate([np.asarray(v, float) for _, v in series])
  finite = finite[np.isfinite(finite)]
  if finite.size and np.abs(finite).max() > 1000.:
    axes.set_xscale('symlog', linthresh=10, linscale=0.5)
    axes.set_xlabel('human-normalised score, % (symmetric log scale; '
                    'dashed: human)')
  else:
    axes.set_xlabel('human-normalised score, % (dashed: human)')
  low = min(-10., float(finite.min()) * 1.2) if finite.size else -10.
  high = max(110., float(finite.max()) * 1.2) if finite.size else 110.
  axes.set_xlim(low, high)
  axes.grid(axis='x', which='major', alpha=0.3)
  # Above the bars, under the title: wherever it sits inside, some level's
  # bar runs under it.
  axes.legend(loc='lower left', bbox_to_anchor=(0., 1.), ncol=num_bars,
              fontsize=8, frameon=False, borderaxespad=0.2)
  axes.set_title(f'{suite.title}: human-normalised score per level',
                 pad=22)
  figure.tight_layout()
  figure.savefig(path, dpi=90, bbox_inches='tight')
  plt.close(figure)
  return path


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


def _guess_suite(tags):
  """The `suites.Suite` whose levels the `episode_return/<level>` tags
  name, or None."""
  names = {t.split('/', 1)[1] for t in tags if t.startswith('episode_return/')}
  for suite in suites.all_suites():
    known = set(suite.references()) | set(suite.known_names())
    if names and suite.references() and names <= known:
      return suite
  return None


def plot_learning_curves(runs, output_dir, suite=None):
  """Learning curves of training runs, over environment frames.

  Args:
    runs: list of (label, dict tag -> Series) (see `read_scalars`).
    output_dir: where the PNGs go.
    suite: the `suites.Suite` whose paper headlines to draw, or None to
      guess it from the tags.

  Returns:
    dict kind -> path written: 'suite_curve' (`human_normalized_score/suite`)
    and 'curves' (`episode_return/<level>`, one panel per level), each only
    if some run has such tags.
  """
  plt = _pyplot()
  paths = {}
  all_tags = set().union(*(set(s) for _, s in runs)) if runs else set()
  suite = suite or _guess_suite(all_tags)

  if 'human_normalized_score/suite' in all_tags:
    figure, axes = plt.subplots(figsize=(7, 4.2))
    for label, scalars in runs:
      series = scalars.get('human_normalized_score/suite')
      if series is not None:
        axes.plot(series.steps, series.values, label=label)
    if suite is not None and suite.paper_columns:
      for column in suite.paper_columns:
        score = scoring.paper_suite_score(suite, column.key)
        axes.axhline(score.headline, linestyle='--', linewidth=0.8,
                     color='0.5')
        axes.annotate(f'paper {column.title}: {score.headline:.1f}%',
                      (0, score.headline), xycoords=('axes fraction', 'data'),
                      xytext=(3, 2), textcoords='offset points', fontsize=7,
                      color='0.35')
      statistic = suite.statistics[0][0].replace('human-normalised', '')
      axes.set_ylabel(f'{suite.title} {statistic.strip().lower()} '
                      'human-norm. score, %')
    else:
      axes.set_ylabel('suite human-normalised score, %')
    axes.set_xlabel('environment frames')
    axes.ticklabel_format(axis='x', style='sci', scilimits=(0, 0))
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    axes.set_title('Suite score during training (training episodes)')
    figure.tight_layout()
    paths['suite_curve'] = os.path.join(output_dir, 'learning_curve_suite.png')
    figure.savefig(paths['suite_curve'], dpi=90)
    plt.close(figure)

  levels = sorted({t.split('/', 1)[1] for t in all_tags
                   if t.startswith('episode_return/')})
  if levels:
    if suite is not None and suite.references():
      # Table order (which is alphabetical for Atari, the released code's for
      # DMLab), so that panels line up with the tables.
      order = {n: i for i, n in enumerate(suite.references())}
      levels.sort(key=lambda n: order.get(_safe_reference(suite, n), 1e9))
    columns = min(8, math.ceil(math.sqrt(len(levels))))
    rows = math.ceil(len(levels) / columns)
    # Small panels for a suite's grid, bigger ones for a few levels; never
    # narrower than the title and legend.
    width, height = (2.2, 1.7) if columns >= 4 else (3.6, 2.6)
    figure, axes_grid = plt.subplots(
        rows, columns, squeeze=False,
        figsize=(max(6.5, width * columns + 0.6), height * rows + 0.8))
    for index, level in enumerate(levels):
      axes = axes_grid[index // columns][index % columns]
      for label, scalars in runs:
        series = scalars.get(f'episode_return/{level}')
        if series is not None:
          axes.plot(series.steps, series.values, label=label, linewidth=1)
      axes.set_title(level, fontsize=8)
      axes.tick_params(labelsize=6)
      axes.xaxis.get_offset_text().set_fontsize(6)
      axes.ticklabel_format(axis='x', style='sci', scilimits=(0, 0))
      axes.grid(alpha=0.3)
    for index in range(len(levels), rows * columns):
      axes_grid[index // columns][index % columns].axis('off')
    height = figure.get_figheight()
    handles, labels = axes_grid[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc='upper right', fontsize=8,
                  ncol=min(4, len(labels)), frameon=False)
    figure.suptitle('Episode return during training (x: environment frames)',
                    fontsize=10, x=0.01, ha='left')
    # Keep a fixed 0.4 inch on top for the title and legend.
    figure.tight_layout(rect=(0, 0, 1, 1 - 0.4 / figure.get_figheight()))
    paths['curves'] = os.path.join(output_dir, 'learning_curves.png')
    figure.savefig(paths['curves'], dpi=80)
    plt.close(figure)
  return paths


def _safe_reference(suite, name):
  try:
    return suite.reference_name(name)
  except ValueError:
    return name


# The whole report.


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
  score_files = _unique_labels([
      load_score_file(p, labels[i] if labels else None)
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
    table = build_table(suite, score_files)
    summaries = [Summary(f.label, f.suite_score) for f in score_files]
    summaries += [Summary(f'paper: {c.title}',
                          scoring.paper_suite_score(suite, c.key))
                  for c in suite.paper_columns]
    paths['bars'] = plot_human_normalized(
        suite, score_files, paper_column,
        os.path.join(output_dir, 'human_normalized.png'))
    sections += [_headline_text(suite, summaries), '',
                 markdown_table(table),
                 '![Human-normalised score per level](human_normalized.png)',
                 '']
    latex.append(latex_table(table))
  if logdirs:
    if run_labels and len(run_labels) != len(logdirs):
      raise ValueError(f'{len(run_labels)} run labels for {len(logdirs)} '
                       'logdirs.')
    runs = [(run_labels[i] if run_labels else
             os.path.basename(os.path.abspath(d)), read_scalars(d))
            for i, d in enumerate(logdirs)]
    curve_paths = plot_learning_curves(runs, output_dir, suite)
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
  parser.add_argument('--output', default='report',
                      help='Output directory.')
  return parser.parse_args(argv)


def main(argv=None):
  args = parse_args(argv)
  try:
    result = make_report(args.scores, args.output, logdirs=args.logdir,
                         labels=args.labels, run_labels=args.run_labels,
                         paper_column=args.paper_column)
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
