"""The report's plots (matplotlib, files only): human-normalised scores per
level beside the paper's, and learning curves from training logs."""

import math
import os

import numpy as np

from scalable_agent import scoring
from scalable_agent import suites


def pyplot():
  """matplotlib.pyplot, drawing to files only (the Agg backend)."""
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
  plt = pyplot()
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
    runs: list of (label, dict tag -> `report.Series`) (see
      `report.read_scalars`).
    output_dir: where the PNGs go.
    suite: the `suites.Suite` whose paper headlines to draw, or None to
      guess it from the tags.

  Returns:
    dict kind -> path written: 'suite_curve' (`human_normalized_score/suite`)
    and 'curves' (`episode_return/<level>`, one panel per level), each only
    if some run has such tags.
  """
  plt = pyplot()
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

