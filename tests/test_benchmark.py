"""The throughput benchmarks' CPU paths (issue 13): what they compute from
their measurements, not how fast this machine is."""

import importlib.util
import json
import os

import pytest

from scalable_agent import benchmark

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _gpu_benchmark():
  """benchmarks/gpu_benchmark.py, a script outside the package."""
  spec = importlib.util.spec_from_file_location(
      'gpu_benchmark', os.path.join(REPO, 'benchmarks', 'gpu_benchmark.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_cost_breakdown_bounds_end_to_end_by_the_summed_per_frame_costs():
  figures = {'env': {'fps': 20000., 'core_us_per_frame': 100.},
             'actor': {'fps': 12000., 'core_us_per_frame': 150.},
             'learner': {'fps': 40000., 'core_us_per_frame': 50.},
             'end2end': {'fps': 5000., 'queue_fill': 0.}}
  breakdown = benchmark.cost_breakdown(figures, cores=2)
  # Inference is what an actor costs beyond its environments: 150 - 100.
  assert breakdown['inference_core_us'] == pytest.approx(50.)
  # 2 cores x 1e6 us/s / (100 + 50 + 50) us per frame.
  assert breakdown['bound_fps'] == pytest.approx(10000.)
  assert breakdown['end2end_of_bound'] == pytest.approx(0.5)
  assert breakdown['end2end_of_ceiling'] == pytest.approx(0.25)
  # Without the actor section there is no inference cost and no bound.
  partial = benchmark.cost_breakdown(
      {k: figures[k] for k in ('env', 'learner')}, cores=2)
  assert 'bound_fps' not in partial and 'inference_core_us' not in partial


def test_benchmark_measures_cpu_cost_per_frame_and_writes_json(tmp_path):
  output = tmp_path / 'figures.json'
  benchmark.main(['--level=CartPole-v1', '--num_actors=1',
                  '--envs_per_actor=4', '--batch_size=4', '--seconds=1',
                  '--sections=env,actor,learner', f'--json={output}'])
  result = json.loads(output.read_text())
  figures, breakdown = result['figures'], result['breakdown']
  assert result['machine']['cores'] == os.cpu_count()
  for part in ('env', 'actor', 'learner'):
    assert figures[part]['fps'] > 0 and figures[part]['core_us_per_frame'] > 0
  # Acting costs more CPU per frame than stepping the environments alone.
  assert breakdown['inference_core_us'] > 0
  assert breakdown['bound_fps'] == pytest.approx(
      os.cpu_count() * 1e6 / (breakdown['emulation_core_us']
                              + breakdown['inference_core_us']
                              + breakdown['learner_core_us']))
  # CartPole: one frame per agent step, 4 x 20 per learner step.
  learner = figures['learner']
  assert learner['fps'] == pytest.approx(80 / learner['seconds_per_step'])


def test_gpu_benchmark_runs_its_sweep_on_the_cpu(tmp_path):
  rows = _gpu_benchmark().main(
      ['--level=CartPole-v1', '--torsos=mlp', '--batch_sizes=4,8',
       '--xla=off,on', '--precisions=float32,bfloat16', '--steps=2',
       '--skip_end2end', f'--output={tmp_path}'])
  assert [(r['precision'], r['xla'], r['batch']) for r in rows] == [
      (p, x, b) for p in ('float32', 'bfloat16') for x in ('off', 'on')
      for b in (4, 8)]
  written = json.loads((tmp_path / 'gpu.json').read_text())
  assert written['rows'] == rows
  for r in rows:
    assert r['fps'] == pytest.approx(r['batch'] * 20 / r['seconds_per_step'])
  table = (tmp_path / 'gpu.md').read_text().splitlines()
  assert len([l for l in table if l.startswith('| learner')]) == 8
