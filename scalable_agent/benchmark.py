"""Throughput figures for this machine: `python -m scalable_agent.benchmark`.

Prints, for an Atari game (Pong by default), in environment frames per second
(agent steps x 4 action repeats, the paper's unit):

  env        the environments alone, random actions, same number of
             processes and environments as the actors: the ceiling;
  actor      the actors alone (environments + batched agent inference),
             unrolls discarded;
  learner    learner steps on synthetic batches (batch x unroll), shallow and
             deep nets, Atari and DMLab shapes;
  end2end    the real local system (`scalable_agent --level=...`), measured
             from the learner's frame counter after a warm-up;

and end-to-end as a fraction of the env-only ceiling. This is a script that
prints figures, not a test: numbers depend on the machine.
"""

import argparse
import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

from scalable_agent import console


def _env_worker(game, num_envs, seconds, index, result_queue):
  import atari57  # pylint: disable=g-import-not-at-top
  env = atari57.make_batched_environment([game], num_envs, seed=index * 1000)
  env.reset()
  rng = np.random.default_rng(index)
  steps = 0
  start = time.perf_counter()
  while time.perf_counter() - start < seconds:
    env.step(rng.integers(0, env.num_actions, num_envs))
    steps += num_envs
  result_queue.put(steps * 4 / (time.perf_counter() - start))


def _actor_worker(game, num_envs, unroll_length, torso, seconds, index,
                  result_queue):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.threading.set_intra_op_parallelism_threads(1)
  tf.config.threading.set_inter_op_parallelism_threads(1)
  from scalable_agent import actor as actor_lib  # pylint: disable=g-import-not-at-top
  from scalable_agent import suites  # pylint: disable=g-import-not-at-top
  config = suites.resolve(game)
  env = config.suite.make_environment(config, num_envs, seed=index * 1000)
  actor = actor_lib.Actor(config.suite.make_agent(env.num_actions, torso),
                          env, unroll_length)
  actor.unroll()  # Warm-up (tracing).
  frames = 0
  start = time.perf_counter()
  while time.perf_counter() - start < seconds:
    actor.unroll()
    frames += num_envs * unroll_length * 4
  result_queue.put(frames / (time.perf_counter() - start))


def _parallel(target, num_processes, args):
  """Runs target(*args, index, queue) in processes; returns summed results."""
  context = multiprocessing.get_context('spawn')
  result_queue = context.Queue()
  processes = [context.Process(target=target, args=args + (i, result_queue))
               for i in range(num_processes)]
  for p in processes:
    p.start()
  results = [result_queue.get() for _ in processes]
  for p in processes:
    p.join()
  return sum(results)


def learner_step_time(level, num_actions, torso, batch_size, unroll_length,
                      steps=5):
  """Seconds per learner step on a synthetic batch of `level`'s shapes."""
  from scalable_agent import learner as learner_lib  # pylint: disable=g-import-not-at-top
  from scalable_agent import suites  # pylint: disable=g-import-not-at-top
  config = suites.resolve(level)
  agent = config.suite.make_agent(num_actions, torso)
  observation = config.suite.observation_spec(config)
  hparams = config.paper_hparams
  hparams = learner_lib.dataclasses.replace(
      hparams, batch_size=batch_size, unroll_length=unroll_length)
  specs = learner_lib.unroll_specs(agent, observation, unroll_length)
  learner = learner_lib.Learner(agent, specs, hparams)
  batch = learner_lib.zeros_batch(specs, batch_size)
  learner.step(batch)  # Tracing.
  learner.step(batch)
  start = time.perf_counter()
  for _ in range(steps):
    float(learner.step(batch).total_loss)
  return (time.perf_counter() - start) / steps


def end_to_end(game, num_actors, envs_per_actor, seconds, warmup_s):
  """Frames/s of the real local system, from the learner's console lines."""
  logdir = tempfile.mkdtemp(prefix='impala_benchmark_')
  command = [sys.executable, '-m', 'scalable_agent.main', f'--level={game}',
             f'--num_actors={num_actors}', f'--envs_per_actor={envs_per_actor}',
             f'--logdir={logdir}', '--log_every_s=5']
  process = subprocess.Popen(command, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
  points = []  # (time, frames)
  start = time.time()
  pattern = re.compile(r'frames ([\d,]+)')
  for line in process.stdout:
    match = pattern.search(line)
    if match and line.startswith('[learner]'):
      points.append((time.time(), int(match.group(1).replace(',', ''))))
      print('   ', line.rstrip(), flush=True)
    if time.time() - start > warmup_s + seconds:
      break
  process.terminate()
  process.wait(timeout=60)
  points = [p for p in points if p[0] - start >= warmup_s]
  if len(points) < 2:
    return float('nan')
  (t0, f0), (t1, f1) = points[0], points[-1]
  return (f1 - f0) / (t1 - t0)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--game', default='pong')
  parser.add_argument('--num_actors', type=int, default=2)
  parser.add_argument('--envs_per_actor', type=int, default=32)
  parser.add_argument('--unroll_length', type=int, default=20)
  parser.add_argument('--seconds', type=float, default=20.)
  parser.add_argument('--sections', default='env,actor,learner,end2end')
  console.add_flags(parser)
  args = parser.parse_args(argv)
  console.setup(args.tf_logs)
  sections = args.sections.split(',')
  figures = {}
  print(f'{os.cpu_count()} CPUs; {args.game}; {args.num_actors} actors x '
        f'{args.envs_per_actor} environments; frames = agent steps x 4.')
  if 'env' in sections:
    figures['env'] = _parallel(_env_worker, args.num_actors,
                               (args.game, args.envs_per_actor, args.seconds))
    print(f'env only (ceiling)      {figures["env"]:10,.0f} frames/s',
          flush=True)
  if 'actor' in sections:
    figures['actor'] = _parallel(
        _actor_worker, args.num_actors,
        (args.game, args.envs_per_actor, args.unroll_length, 'shallow',
         args.seconds))
    print(f'actor only (shallow)    {figures["actor"]:10,.0f} frames/s',
          flush=True)
  if 'learner' in sections:
    from scalable_agent import suites  # pylint: disable=g-import-not-at-top
    # Pong has 6 actions; DMLab-30 levels share IMPALA's 9.
    for level, num_actions, torso in [
        ('pong', 6, 'shallow'), ('pong', 6, 'deep'),
        ('explore_goal_locations_small', 9, 'shallow'),
        ('explore_goal_locations_small', 9, 'deep')]:
      suite = suites.resolve(level).suite.name
      seconds = learner_step_time(level, num_actions, torso, 32, 20)
      fps = 32 * 20 * 4 / seconds
      figures[f'learner_{suite}_{torso}'] = fps
      print(f'learner only {suite:8s} {torso:7s} batch 32 x unroll 20: '
            f'{seconds:6.3f} s/step {fps:10,.0f} frames/s', flush=True)
  if 'end2end' in sections:
    figures['end2end'] = end_to_end(args.game, args.num_actors,
                                    args.envs_per_actor, args.seconds * 3,
                                    warmup_s=30)
    print(f'end to end (shallow)    {figures["end2end"]:10,.0f} frames/s',
          flush=True)
    if 'env' in figures:
      print(f'end to end / env-only ceiling: '
            f'{figures["end2end"] / figures["env"]:.0%}')
  return figures


if __name__ == '__main__':
  main()
