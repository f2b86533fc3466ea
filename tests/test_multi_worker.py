"""A learner across hosts: `MultiWorkerMirroredStrategy` (issue 13).

Two learner workers run as local processes on CPU, each with its own half of
the batch; they must stay in lock-step with identical parameters, and match
one learner fed the whole batch.
"""

import json
import os
import subprocess
import sys

import numpy as np
import tensorflow as tf

from scalable_agent import transport

import test_learner
import test_system

TESTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TESTS)


def _run_workers(tmp_path, script, extra_args=(), timeout=300):
  addresses = ','.join(f'localhost:{transport.free_port()}' for _ in range(2))
  outputs = [str(tmp_path / f'worker{i}.npz') for i in range(2)]
  processes = [subprocess.Popen(
      [sys.executable, os.path.join(TESTS, script), addresses, str(i),
       outputs[i], *extra_args], cwd=REPO, stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT, text=True) for i in range(2)]
  logs = []
  for p in processes:
    try:
      logs.append(p.communicate(timeout=timeout)[0])
    except subprocess.TimeoutExpired:
      for q in processes:
        q.kill()
      raise
  for p, log in zip(processes, logs):
    assert p.returncode == 0, log[-3000:]
  return [dict(np.load(o)) for o in outputs]


def test_two_learner_workers_stay_in_lock_step_and_match_one_learner(
    tmp_path):
  worker0, worker1 = _run_workers(tmp_path, 'multi_worker_script.py')
  hp = test_learner.HP
  assert worker0['num_workers'] == worker1['num_workers'] == 2
  assert worker0['is_chief'] and not worker1['is_chief']
  num_variables = len([k for k in worker0 if k.startswith('trained')])
  assert num_variables == 8  # Two torso layers and two heads (W, b).
  # Lock-step: the same losses, parameters and frame count on both workers.
  np.testing.assert_array_equal(worker0['losses'], worker1['losses'])
  for i in range(num_variables):
    np.testing.assert_array_equal(worker0[f'initial{i}'],
                                  worker1[f'initial{i}'])
    np.testing.assert_array_equal(worker0[f'trained{i}'],
                                  worker1[f'trained{i}'])
  assert worker0['frames'] == worker1['frames'] == 3 * hp.frames_per_step
  # One learner, here, fed the concatenated batch from the same weights.
  single, specs = test_learner.mlp_learner(hp, tf.distribute.get_strategy())
  for i, v in enumerate(single.agent.trainable_variables):
    v.assign(worker0[f'initial{i}'])
  batch = test_learner.random_batch(specs, hp.batch_size, 3, seed=5)
  losses = [float(single.step(batch).total_loss) for _ in range(3)]
  # The workers' loss is the sum of their halves' losses.
  np.testing.assert_allclose(worker0['losses'], losses, rtol=1e-5, atol=1e-5)
  assert not np.allclose(worker0['trained0'], worker0['initial0'])
  for i, v in enumerate(single.agent.trainable_variables):
    np.testing.assert_allclose(worker0[f'trained{i}'], v.numpy(), rtol=1e-5,
                               atol=1e-6)
  # any_worker: worker 1 alone raised the second flag; both see it.
  assert worker0['agreed'].tolist() == worker1['agreed'].tolist() == [
      False, True]
  # broadcast_from_chief: float and int64 variables take worker 0's values.
  assert worker0['broadcast_ok'] and worker1['broadcast_ok']
  assert (worker0['frames_after_broadcast'] ==
          worker1['frames_after_broadcast'] == worker0['frames'])


def _start_task(tf_config, *flags):
  env = dict(os.environ, PYTHONUNBUFFERED='1', TF_CONFIG=json.dumps(tf_config))
  return subprocess.Popen(test_system._command(*flags), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, cwd=REPO,
                          env=env, start_new_session=True)


def _train(cluster, logdirs, stop_at_frames):
  """Runs two learner workers and two actors to `stop_at_frames`; returns
  each learner worker's console lines."""
  flags = ['--level=CartPole-v1', '--log_every_s=1',
           f'--stop_at_frames={stop_at_frames}']
  learners = [_start_task({'cluster': cluster,
                           'task': {'type': 'learner', 'index': i}},
                          *flags, f'--logdir={logdirs[i]}')
              for i in range(2)]
  actors = [_start_task({'cluster': cluster,
                         'task': {'type': 'actor', 'index': i}}, *flags)
            for i in range(2)]
  try:
    outputs = [p.communicate(timeout=400)[0] for p in learners]
    for p, output in zip(learners, outputs):
      assert p.returncode == 0, output[-3000:]
    for actor in actors:
      assert actor.wait(timeout=60) == 0
  finally:
    test_system._stop(*learners, *actors)
  return outputs


def _last_step_and_frames(output):
  step, frames = test_system.LINE.findall(output)[-1][:2]
  return int(step), int(frames.replace(',', ''))


def test_two_learner_workers_train_from_tf_config_and_resume(tmp_path):
  ports = [transport.free_port() for _ in range(6)]
  cluster = {
      'learner': [f'localhost:{p}' for p in ports[:2]],
      'learner_collective': [f'localhost:{p}' for p in ports[2:4]],
      'actor': [f'localhost:{p}' for p in ports[4:]]}
  logdirs = [str(tmp_path / 'chief'), str(tmp_path / 'worker1')]
  first = _train(cluster, logdirs, stop_at_frames=4000)
  assert 'learner worker 0 of 2 (chief)' in first[0]
  assert 'learner worker 1 of 2;' in first[1]
  # Lock-step: both workers stopped at the same step and frame count.
  # CartPole's global batch of 8 unrolls x 20 steps is 160 frames a step,
  # 4 unrolls from each worker's own actor.
  ends = [_last_step_and_frames(o) for o in first]
  assert ends[0] == ends[1]
  assert ends[0][1] >= 4000 and ends[0][1] == ends[0][0] * 160
  # Only the chief writes checkpoints and summaries.
  assert os.listdir(os.path.join(logdirs[0], 'checkpoints'))
  assert not os.path.exists(os.path.join(logdirs[1], 'checkpoints'))
  assert not any(name.startswith('events')
                 for name in os.listdir(logdirs[1]))

  # Run again: the chief resumes from its checkpoint and the other worker
  # takes its parameters, step and frames from it.
  second = _train(cluster, logdirs, stop_at_frames=6000)
  assert 'resumed from' in second[0]
  resumed = [_last_step_and_frames(o) for o in second]
  assert resumed[0] == resumed[1]
  assert resumed[0][0] > ends[0][0] and resumed[0][1] >= 6000
  first_lines = [test_system.LINE.findall(o) for o in second]
  # Worker 1's first report already counts from the chief's checkpoint.
  assert int(first_lines[1][0][1].replace(',', '')) > ends[0][1]
