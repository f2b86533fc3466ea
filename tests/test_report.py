"""Tests of the report: report.py, report_tables.py (tabulate), report_plots.py,
score_files.py (reading scores.json): tables, headline rows, plots, curves.

The strongest check of the tables is the paper itself: a score file whose
returns are one of the paper's IMPALA columns must give back the paper's
headline number (Atari-57 deep experts: median 191.8%; DMLab-30 IMPALA deep
PBT: mean capped 49.4%).
"""

import csv
import json
import os
import re

import matplotlib
matplotlib.use('Agg')
import matplotlib.image  # pylint: disable=g-import-not-at-top
import numpy as np
import pytest

import atari57
import dmlab30
from scalable_agent import report
from scalable_agent import score_files
from scalable_agent import scoring


def _write_scores(path, suite, level, episodes, **extra):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  data = {'suite': suite, 'level': level, 'checkpoint': None,
          'torso': 'deep', 'max_episode_frames': None, 'episodes': episodes}
  data.update(extra)
  with open(path, 'w') as f:
    json.dump(data, f)
  return str(path)


def _atari_paper_scores(tmp_path, column, name='paper_atari'):
  return _write_scores(
      tmp_path / name / 'scores.json', 'atari57', 'atari57',
      {g.name: [getattr(g, column)] for g in atari57.GAMES})


def _first_cells(text, separator):
  """The first cell of each row of a Markdown ('|') or LaTeX ('&') table in
  `text`, without the padding tabulate adds."""
  if separator == '|':
    rows = [l.strip()[1:] for l in text.splitlines() if l.startswith('|')]
  else:
    rows = [l for l in text.splitlines() if l.rstrip().endswith('\\\\')]
  return [row.split(separator)[0].strip() for row in rows]


def _check_png(path, min_height=300, min_width=300):
  assert os.path.getsize(path) > 10_000
  image = matplotlib.image.imread(path)
  assert image.shape[0] >= min_height and image.shape[1] >= min_width
  # Not a blank canvas.
  assert image[..., :3].std() > 0.05
  return image


def test_atari_report_from_the_papers_own_numbers(tmp_path):
  deep = _atari_paper_scores(tmp_path, 'impala_deep_experts', 'deep_experts')
  multitask = _atari_paper_scores(tmp_path, 'impala_deep_multitask',
                                  'multitask')
  out = tmp_path / 'report'
  result = report.make_report([deep, multitask], str(out))

  ours = {s.label: s.suite_score for s in result.summaries}
  assert ours['deep_experts'].median == pytest.approx(191.8, abs=0.06)
  assert ours['multitask'].median == pytest.approx(59.7, abs=0.06)
  assert ours['paper: IMPALA shallow experts'].median == pytest.approx(
      93.2, abs=0.06)
  assert ours['deep_experts'] == ours['paper: IMPALA deep experts']

  markdown = (out / 'report.md').read_text()
  latex = (out / 'report.tex').read_text()
  for game in atari57.GAME_NAMES:
    assert game in _first_cells(markdown, '|')
    assert game.replace('_', r'\_') in _first_cells(latex, '&')
  # Two score files: two pairs of columns beside the paper's three.
  header = [l for l in markdown.splitlines() if l.startswith('| Game')][0]
  assert header.count('human-norm.') == 2
  for title in ('IMPALA shallow experts', 'IMPALA deep experts',
                'IMPALA deep multi-task'):
    assert title in header and title in latex
  median_row = [l for l in markdown.splitlines()
                if l.startswith('| **Median human-normalised**')][0]
  assert median_row.count('**191.8%**') == 2  # Ours and the paper's.
  assert '**59.7%**' in median_row and '**93.2%**' in median_row
  assert 'Mean human-normalised' in markdown
  assert 'Median human-normalised' in _first_cells(latex, '&')
  assert r'191.8\%' in latex
  assert latex.count(r'\\') == 57 + 1 + 2  # Levels, header, summary.
  _check_png(result.paths['bars'], min_height=1000)


def test_dmlab_report_from_the_papers_own_numbers(tmp_path):
  # Keyed by train names (as a training run logs them): renamed to test names.
  pbt = _write_scores(
      tmp_path / 'pbt' / 'scores.json', 'dmlab30', 'dmlab30',
      {l.train_name: [l.impala_deep_pbt, l.impala_deep_pbt]
       for l in dmlab30.LEVELS})
  out = tmp_path / 'report'
  result = report.make_report([pbt], str(out))
  ours = result.summaries[0].suite_score
  assert ours.mean_capped == pytest.approx(49.4, abs=0.06)
  assert ours.headline == ours.mean_capped
  paper = {s.label: s.suite_score for s in result.summaries}
  assert paper['paper: IMPALA-Experts (deep)'].mean_capped == pytest.approx(
      44.5, abs=0.06)

  markdown = (out / 'report.md').read_text()
  for name in dmlab30.TEST_LEVEL_NAMES:
    assert name in _first_cells(markdown, '|')
  assert 'rooms_collect_good_objects_train' not in markdown
  capped_row = [l for l in markdown.splitlines()
                if 'Mean capped human-normalised' in l][0]
  assert capped_row.count('**49.4%**') == 2
  # The paper's 44.5% is 44.449% from its own table: one decimal gives 44.4.
  assert '**44.4%**' in capped_row
  assert 'Mean uncapped human-normalised' in markdown
  assert 'IMPALA (deep, PBT)' in (out / 'report.tex').read_text()
  _check_png(result.paths['bars'])


def test_partial_score_file_has_no_headline(tmp_path):
  pong = _write_scores(tmp_path / 'pong' / 'scores.json', 'atari57', 'pong',
                       {'pong': [-21., -20.]}, torso='shallow')
  result = report.make_report([pong], str(tmp_path / 'out'))
  assert result.summaries[0].suite_score is None
  markdown = (tmp_path / 'out' / 'report.md').read_text()
  levels = _first_cells(markdown, '|')
  assert 'pong' in levels and 'breakout' not in levels
  assert 'n/a (1 of 57)' in markdown
  # Paper headline rows still come from the full tables.
  assert '191.8%' in markdown
  expected = scoring.human_normalized_score(-20.5, -20.7, 14.6)
  assert f'{expected:.1f}%' in markdown
  _check_png(result.paths['bars'], min_height=150)


def test_mixed_suites_and_bad_files_are_refused(tmp_path):
  atari = _atari_paper_scores(tmp_path, 'impala_deep_experts')
  lab = _write_scores(tmp_path / 'lab' / 'scores.json', 'dmlab30',
                      'rooms_watermaze', {'rooms_watermaze': [1.]})
  with pytest.raises(ValueError, match='several suites'):
    report.make_report([atari, lab], str(tmp_path / 'out'))
  bad = tmp_path / 'bad.json'
  bad.write_text('{"suite": "atari57"}')
  with pytest.raises(ValueError, match='no "episodes"'):
    score_files.load_score_file(str(bad))
  assert report.main([str(bad), '--output', str(tmp_path / 'o')]) == 2


def test_latex_escapes_labels_level_names_and_notes(tmp_path):
  pong = _write_scores(tmp_path / 'pong' / 'scores.json', 'atari57', 'pong',
                       {'pong': [-21.]}, torso='shallow',
                       max_episode_frames=400)
  beam = _write_scores(tmp_path / 'beam' / 'scores.json', 'atari57',
                       'beam_rider', {'beam_rider': [300.]}, torso='shallow')
  label = 'run_1 & 50% #2 ~x^'
  out = tmp_path / 'out'
  report.make_report([pong, beam], str(out), labels=[label, 'beam'])
  latex = (out / 'report.tex').read_text()
  escaped = r'run\_1 \& 50\% \#2 \textasciitilde{}x\^{}'
  assert f'{escaped} return' in latex
  assert r'beam\_rider' in _first_cells(latex, '&')
  caption, = [l for l in latex.splitlines() if l.startswith(r'\caption{')]
  assert f'{escaped}: -{{}}-level=pong' in caption  # Not an en dash.
  assert '108,000' in caption and r'\_' in caption  # beam_rider's note.
  # Apart from the first line (a LaTeX comment), no special character is
  # left unescaped; outside the tabular no & at all.
  body = latex.split('\n', 1)[1]
  assert not re.search(r'(?<!\\)[%#_^~]', body)
  assert not re.search(r'(?<!\\)&', caption)
  # Every row has as many cells as the header.
  rows = [l for l in body.splitlines() if l.endswith('\\\\')]
  assert len({len(re.findall(r'(?<!\\)&', row)) for row in rows}) == 1
  markdown = (out / 'report.md').read_text()
  assert f'{label} return' in markdown  # Markdown shows it as it is.


def test_learning_curves_from_tensorboard_logs(tmp_path):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  logdir = tmp_path / 'runs' / 'atari57'
  writer = tf.summary.create_file_writer(str(logdir))
  steps = [0, 1_000_000, 2_000_000, 3_000_000]
  with writer.as_default():
    for i, step in enumerate(steps):
      tf.summary.scalar('episode_return/pong', -21. + 5 * i, step=step)
      tf.summary.scalar('episode_return/breakout', 2. * i, step=step)
      tf.summary.scalar('human_normalized_score/suite', 10. * i, step=step)
      tf.summary.scalar('learner/total_loss', 1. / (i + 1), step=step)
  writer.close()

  scalars = report.read_scalars(str(logdir))
  np.testing.assert_array_equal(scalars['episode_return/pong'].steps, steps)
  np.testing.assert_allclose(scalars['episode_return/pong'].values,
                             [-21., -16., -11., -6.])
  np.testing.assert_allclose(scalars['human_normalized_score/suite'].values,
                             [0., 10., 20., 30.])

  scores = _atari_paper_scores(tmp_path, 'impala_deep_multitask')
  out = tmp_path / 'out'
  assert report.main([scores, '--logdir', str(logdir), '--output',
                      str(out)]) == 0
  for name in ('learning_curve_suite.png', 'learning_curves.png',
               'human_normalized.png', 'report.md', 'report.tex'):
    assert (out / name).exists(), name
  _check_png(out / 'learning_curve_suite.png')
  _check_png(out / 'learning_curves.png', min_height=200)
  markdown = (out / 'report.md').read_text()
  assert '![Suite score during training](learning_curve_suite.png)' in markdown
  assert '![Episode return per level](learning_curves.png)' in markdown
  with open(out / 'learning_curves.csv') as f:
    rows = list(csv.DictReader(f))
  pong = [(int(r['frames']), float(r['value'])) for r in rows
          if r['tag'] == 'episode_return/pong']
  assert pong == list(zip(steps, [-21., -16., -11., -6.]))
  assert {r['run'] for r in rows} == {'atari57'}

  with pytest.raises(ValueError, match='No TensorBoard event files'):
    report.read_scalars(str(tmp_path))
