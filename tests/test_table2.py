"""The Table 2 runner: the grid, its logdirs, the table, and a DMLab grid
run end to end against the `deepmind_lab` stand-in."""

import csv
import json
import os
import sys

import pytest

from scalable_agent import table2

from conftest import STANDIN_DIR


def test_grid_and_logdirs_round_trip(tmp_path):
  cells = table2.grid(['pong'], seeds=[0, 1])
  assert len(cells) == 4 * 2 * 2
  assert {(c.correction, c.replay) for c in cells} == {
      (c, r) for c in ('vtrace', 'one_step', 'epsilon', 'none')
      for r in (False, True)}
  for cell in cells:
    assert table2.cell_of(str(tmp_path),
                          table2.run_dir(str(tmp_path), cell)) == cell
  replay = table2.Cell('pong', 'none', True, 0)
  assert table2.run_flags(replay, 500) == [
      '--off_policy_correction=none', '--replay_capacity=500',
      '--replay_fraction=0.5']
  assert table2.run_flags(replay._replace(replay=False), 500) == [
      '--off_policy_correction=none', '--replay_capacity=0']
  # What the training program makes of them on an Atari game, whose defaults
  # replay: a no-replay cell must not.
  from scalable_agent import main as main_lib  # pylint: disable=g-import-not-at-top
  from scalable_agent import suites  # pylint: disable=g-import-not-at-top
  config = suites.resolve('pong')
  for cell in (replay, replay._replace(replay=False)):
    hparams = main_lib.hyperparameters(
        main_lib.parse_args(table2.run_flags(cell, 500)), config)
    assert (hparams.num_replayed > 0) == cell.replay
    assert (hparams.replay_capacity > 0) == cell.replay
    assert hparams.off_policy_correction == 'none'


def test_table_averages_the_best_seeds_beside_the_paper():
  def result(correction, replay, seed, value, level='rooms_watermaze'):
    return table2.RunResult(table2.Cell(level, correction, replay, seed),
                            value, 1000, 2.0 + replay, 0.1, 0.01)

  results = [result('vtrace', False, s, v)
             for s, v in enumerate([10., 40., 20., 30.])]
  results += [result('none', True, 0, -5.), result('vtrace', False, 0, 3.,
                                                   level='pong')]
  table = table2.build_table(results, top=3)
  assert table.header == [
      'Replay', 'Correction', 'rooms_watermaze (ours)',
      'rooms_watermaze (paper)', 'pong (ours)', 'policy lag (updates)']
  vtrace, none = table.rows
  # Best 3 of 4 seeds: (40 + 30 + 20) / 3; the paper's 46.8 beside it.
  assert vtrace == ['Without replay', 'V-trace', '30.0', '46.8', '3.0', '2.0']
  assert none == ['With replay', 'No-correction', '-5.0', '35.0', '', '3.0']
  assert 'best 3 of 4 seed(s)' in table.notes[0]


def test_paper_table_is_complete():
  paper = table2.paper_table()
  assert len(paper) == 4 * 2 * 5
  # Spot checks against the paper: V-trace with replay on
  # explore_goal_locations_small, no correction without replay on
  # lasertag_three_opponents_small.
  assert paper[('vtrace', True, 'explore_goal_locations_small')] == 250.8
  assert paper[('none', False, 'lasertag_three_opponents_small')] == 5.0


def test_dmlab_grid_runs_and_makes_the_table(tmp_path, monkeypatch, lab):
  del lab  # Only its directory matters: the runs are processes.
  monkeypatch.setenv('PYTHONPATH', os.pathsep.join(
      [str(STANDIN_DIR)] + sys.path))
  root = str(tmp_path / 'grid')
  training = ['--role=single_process', '--num_actors=1', '--envs_per_actor=2',
              '--torso=shallow', '--batch_size=2', '--unroll_length=5',
              '--log_every_s=0', '--eval_every_frames=0']
  # seekavoid_arena_01: the paper's level outside DMLab-30. Two cells of
  # the grid (each run takes ~20 s here): V-trace without replay, 1-step
  # with replay.
  for correction, replay in (('vtrace', 'no'), ('one_step', 'yes')):
    status = table2.main(['run', '--levels', 'seekavoid_arena_01',
                          '--corrections', correction, '--replay', replay,
                          '--frames=400', '--replay_capacity=8',
                          f'--logdir={root}', '--', *training])
    assert status == 0
  replayed = os.path.join(root, 'seekavoid_arena_01', 'one_step_replay',
                          'seed_0')
  with open(os.path.join(replayed, 'run.json')) as f:
    hparams = json.load(f)['hparams']
  assert hparams['off_policy_correction'] == 'one_step'
  assert hparams['replay_capacity'] == 8

  output = str(tmp_path / 'docs')
  assert table2.main(['table', root, f'--output={output}']) == 0
  with open(os.path.join(output, 'table2.md')) as f:
    markdown = f.read()
  rows = [[cell.strip() for cell in line.split('|')[1:-1]]
          for line in markdown.splitlines() if line.startswith('| W')]
  # Our return, then the paper's (V-trace 43.8, 1-step with replay 41.6).
  assert [row[:2] + row[3:4] for row in rows] == [
      ['Without replay', 'V-trace', '43.8'],
      ['With replay', '1-Step', '41.6']]
  with open(os.path.join(output, 'runs.csv')) as f:
    runs = list(csv.DictReader(f))
  assert [(r['correction'], r['replay']) for r in runs] == [
      ('one_step', 'yes'), ('vtrace', 'no')]
  assert all(int(r['frames']) >= 400 for r in runs)
  # Replayed unrolls are older: the lag of the replay run is larger.
  assert float(runs[0]['policy_lag']) > float(runs[1]['policy_lag'])
  assert os.path.getsize(os.path.join(output, 'table2.png')) > 1000
  assert r'\begin{table}' in open(os.path.join(output, 'table2.tex')).read()


def test_missing_runs_are_an_error(tmp_path):
  with pytest.raises(ValueError, match='No Table 2 runs'):
    table2.read_results(str(tmp_path))
