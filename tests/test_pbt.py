"""Population-based training: the exploit/explore rule, the shared
directory, exploiting a checkpoint, and a population of 3 on CartPole."""

import json
import logging
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from scalable_agent import pbt
from scalable_agent import report

import test_actor_and_training as loops

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_threshold_absolute_for_scores_relative_for_returns():
  # Human-normalised fitness (fractions): better by more than 0.05.
  assert pbt.is_better(0.56, 0.50, 0.05, 'human_normalized')
  assert not pbt.is_better(0.54, 0.50, 0.05, 'human_normalized')
  # Returns: by more than 5% of |own| (at least 0.05).
  assert pbt.is_better(106., 100., 0.05, 'return')
  assert not pbt.is_better(104., 100., 0.05, 'return')
  assert pbt.is_better(-19., -20.5, 0.05, 'return')
  assert not pbt.is_better(-20., -20.5, 0.05, 'return')
  assert pbt.is_better(0.06, 0., 0.05, 'return')
  assert not pbt.is_better(None, 0., 0.05, 'return')


def test_the_other_member_is_uniform_over_the_others():
  records = [{'member': i, 'checkpoint': f'ckpt-{i}', 'fitness': 1.}
             for i in range(4)]
  records.append({'member': 4, 'checkpoint': None, 'fitness': 1.})
  rng = np.random.default_rng(0)
  counts = np.bincount([pbt.choose_other(records, 2, rng)['member']
                        for _ in range(6000)], minlength=5)
  assert counts[2] == 0 and counts[4] == 0  # Itself; no checkpoint yet.
  np.testing.assert_allclose(counts[[0, 1, 3]] / 6000, 1 / 3, atol=0.03)
  assert pbt.choose_other(records[2:3], 2, rng) is None


def test_explore_probability_and_factors():
  rng = np.random.default_rng(1)
  names = ('learning_rate', 'entropy_cost', 'epsilon')
  start = {'learning_rate': 1e-3, 'entropy_cost': 1e-2, 'epsilon': 0.1,
           'max_gradient_norm': 40.}
  changed = {name: [] for name in names}
  for _ in range(6000):
    values, multipliers = pbt.explore(start, rng, names, 1 / 3, 1.2)
    assert values['max_gradient_norm'] == 40.  # Not tuned here.
    for name in names:
      if name in multipliers:
        changed[name].append(multipliers[name])
        assert values[name] == pytest.approx(start[name] * multipliers[name])
      else:
        assert values[name] == start[name]
  for name in names:
    multipliers = np.array(changed[name])
    assert len(multipliers) / 6000 == pytest.approx(1 / 3, abs=0.025)
    assert set(np.round(multipliers, 6)) == {round(1.2, 6), round(1 / 1.2, 6)}
    assert np.mean(multipliers > 1) == pytest.approx(0.5, abs=0.04)


def test_initial_hyperparameters_follow_table_d1():
  rng = np.random.default_rng(2)
  draws = [pbt.initial_hyperparameters(
      rng, {'max_gradient_norm': 40.}, pbt.tuned_names('atari57'))
           for _ in range(4000)]
  lr = np.log10([d['learning_rate'] for d in draws])
  entropy = np.log10([d['entropy_cost'] for d in draws])
  # Log-uniform: uniform exponents over the range, mean at the middle.
  assert lr.min() >= np.log10(5e-6) and lr.max() <= np.log10(5e-3)
  assert np.mean(lr) == pytest.approx(np.log10(5e-6 * 5e-3) / 2, abs=0.05)
  assert entropy.min() >= np.log10(5e-5) and entropy.max() <= -2
  assert np.mean(entropy) == pytest.approx(np.log10(5e-5 * 1e-2) / 2,
                                           abs=0.05)
  epsilons = [d['epsilon'] for d in draws]
  assert set(epsilons) == {1e-1, 1e-3, 1e-5, 1e-7}
  assert all(d['max_gradient_norm'] == 40. for d in draws)
  assert pbt.tuned_names('dmlab30') == ('learning_rate', 'entropy_cost',
                                        'epsilon')


def test_records_are_replaced_atomically(tmp_path):
  directory = str(tmp_path)
  stop = threading.Event()
  bad = []

  def read():
    while not stop.is_set():
      for record in pbt.read_records(directory):
        if len(record['history']) != 500:
          bad.append(record)

  record = {'member': 0, 'fitness': 1., 'history': list(range(500))}
  pbt.write_record(directory, record)
  reader = threading.Thread(target=read)
  reader.start()
  for i in range(200):
    pbt.write_record(directory, dict(record, fitness=float(i)))
  stop.set()
  reader.join()
  assert not bad
  assert os.listdir(pbt.records_dir(directory)) == ['member_0.json']


@pytest.mark.parametrize('content', [
    '{}', '[]', '{"member": "0"}', '{"member": -1}', '{"member": true}',
    '{"member": 3, "fitness": "high"}', '{"member": 3, "fitness": NaN}',
    '{"member": 3, "checkpoint": 7}',
    '{"member": 3, "hyperparameters": {"learning_rate": "fast"}}',
    '{"member": 3, "history": {}}'])
def test_a_record_that_does_not_validate_is_skipped_naming_it(
    tmp_path, caplog, content):
  # Issue 24, defect 2: one bad file crashed every member at its next ready
  # point (KeyError: 'member'); the others must still be read.
  directory = str(tmp_path)
  pbt.write_record(directory, {'member': 0, 'fitness': 1., 'history': [],
                               'hyperparameters': {'learning_rate': 1e-3}})
  bad = os.path.join(pbt.records_dir(directory), 'member_9.json')
  with open(bad, 'w') as f:
    f.write(content)
  with caplog.at_level(logging.WARNING):
    records = pbt.read_records(directory)
  assert [r['member'] for r in records] == [0]
  assert bad in caplog.text


def _settings(directory, member, **overrides):
  values = dict(directory=directory, member=member, burn_in_frames=0,
                ready_episodes=1, threshold=0.05, perturb_probability=0.,
                perturb_factor=1.2, tuned=pbt.tuned_names('gymnasium'))
  values.update(overrides)
  return pbt.Settings(**values)


def _train(loop, actor, steps):
  stop = threading.Event()
  thread = threading.Thread(target=loops._feed, args=(loop, actor, stop),  # pylint: disable=protected-access
                            daemon=True)
  thread.start()
  loop.run(max_steps=steps)
  stop.set()
  loop.queue.close()
  thread.join(10)


def test_exploit_copies_weights_slots_and_settings_not_counters(tmp_path):
  directory = str(tmp_path)
  source, source_actor, _ = loops.make_loop(pbt.member_logdir(directory, 0))
  source.learner.tunable.assign(learning_rate=0.02, entropy_cost=0.003)
  _train(source, source_actor, 6)
  checkpoint = source.save()
  record = {'member': 0, 'fitness': 10., 'checkpoint': checkpoint,
            'hyperparameters': source.learner.tunable.values()}

  target, target_actor, _ = loops.make_loop(pbt.member_logdir(directory, 1))
  member = pbt.Member(_settings(directory, 1), target, 'return')
  _train(target, target_actor, 3)
  frames = int(target.learner.num_env_frames)
  steps = int(target.step_counter)
  def state(loop):  # Weights and the RMSProp accumulators.
    return [v.numpy() for v in list(loop.learner.agent.trainable_variables)
            + list(loop.learner.optimizer.mean_squares)]

  assert any(not np.array_equal(a, b)
             for a, b in zip(state(target), state(source)))
  events = member.exploit(record, frames)
  assert events[0]['kind'] == 'exploit' and events[0]['source'] == 0
  # The source has not moved since its checkpoint: equal to it.
  for copied, original in zip(state(target), state(source)):
    np.testing.assert_array_equal(copied, original)
  assert target.learner.tunable.values()['learning_rate'] == pytest.approx(
      0.02)
  # Its own counters go on.
  assert int(target.learner.num_env_frames) == frames
  assert int(target.step_counter) == steps
  assert frames != int(source.learner.num_env_frames)


def test_population_of_three_on_cartpole(tmp_path):
  logdir = str(tmp_path / 'population')
  result = subprocess.run(
      [sys.executable, '-m', 'scalable_agent.main', '--level=CartPole-v1',
       '--role=single_process', '--num_actors=1', f'--logdir={logdir}',
       '--pbt_population=3', '--pbt_burn_in_frames=1000',
       '--pbt_ready_episodes=10', '--pbt_threshold=0',
       '--pbt_perturb_probability=0.5', '--stop_at_frames=6000',
       '--log_every_s=30', '--eval_every_frames=0'],
      cwd=REPO, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
  records = pbt.read_records(logdir)
  assert [r['member'] for r in records] == [0, 1, 2]
  events = [e for r in records for e in r['events']]
  assert any(e['kind'] == 'exploit' for e in events)
  assert any(e['kind'] == 'explore' for e in events)
  for record in records:
    assert record['frames'] >= 1000 and record['history']
    with open(os.path.join(logdir, f'member_{record["member"]}',
                           'run.json')) as f:
      assert json.load(f)['level'] == 'CartPole-v1'
  output = str(tmp_path / 'report')
  assert report.main(['--pbt', logdir, f'--output={output}']) == 0
  assert os.path.getsize(os.path.join(output, 'fitness.png')) > 1000
  assert os.path.getsize(os.path.join(output, 'hyperparameters.png')) > 1000
