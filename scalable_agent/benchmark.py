"""Throughput of this machine, and where its CPU time goes.

    python -m scalable_agent.benchmark [--level=pong] [--torso=nature] \\
        [--json=figures.json]

For one configuration (level, torso, actors x environments, batch x unroll)
it measures, in environment frames per second (agent steps x action repeats:
4 for Atari, the paper's unit):

  env        the environments alone, random actions, as many processes and
             environments as the actors: the ceiling;
  actor      the actors alone (environments + batched agent inference),
             unrolls discarded;
  learner    learner steps on synthetic batches of the level's shapes (no
             environment needed: DMLab shapes work without DeepMind Lab);
  end2end    the real local system (`scalable_agent --level=...`), from the
             learner's frame counter after a warm-up;

and, from the CPU time each part's processes use (not wall time), the cost
of a frame in core-microseconds: emulation (env), actor inference (actor
minus env) and the learner. On one machine every frame pays all three, so
`cores x 1e6 / their sum` bounds end to end; the report gives that bound and
the fraction of it, and of the env-only ceiling, that end to end reaches.
With a GPU the learner's CPU cost is the host side only. `--json` writes the
figures for comparing runs. A script that prints figures, not a test:
numbers depend on the machine and its load.
"""

import argparse
import json
import multiprocessing
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

import numpy as np
import tabulate

from scalable_agent import console


def _cpu_seconds():
  """CPU time of this process, all threads, and of its finished child
  processes (user + system): DeepMind Lab compiles a procedurally generated
  map in child processes (q3map2, bspc) at every reset."""
  t = os.times()
  return t.user + t.system + t.children_user + t.children_system


def _make_environment(level, num_envs, index):
  from scalable_agent import suites  # pylint: disable=g-import-not-at-top
  config = suites.resolve(level)
  env = config.suite.make_environment(config, num_envs, seed=index * 1000)
  return config, env


def _env_worker(level, num_envs, seconds, index, result_queue):
  console.setup()  # TensorFlow's start-up lines stay hidden in workers too.
  config, env = _make_environment(level, num_envs, index)
  repeats = config.suite.num_action_repeats
  env.reset()
  rng = np.random.default_rng(index)
  steps = 0
  start, cpu = time.perf_counter(), _cpu_seconds()
  while time.perf_counter() - start < seconds:
    env.step(rng.integers(0, env.num_actions, num_envs))
    steps += num_envs
  result_queue.put((steps * repeats, time.perf_counter() - start,
                    _cpu_seconds() - cpu))


def _actor_worker(level, num_envs, unroll_length, torso, bfloat16, seconds,
                  index, result_queue):
  console.setup()  # TensorFlow's start-up lines stay hidden in workers too.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from scalable_agent import networks  # pylint: disable=g-import-not-at-top
  networks.use_bfloat16(bfloat16)
  # As the real actors (main._configure_tensorflow).
  tf.config.threading.set_intra_op_parallelism_threads(1)
  tf.config.threading.set_inter_op_parallelism_threads(1)
  from scalable_agent import actor as actor_lib  # pylint: disable=g-import-not-at-top
  config, env = _make_environment(level, num_envs, index)
  repeats = config.suite.num_action_repeats
  actor = actor_lib.Actor(config.suite.make_agent(env.num_actions, torso),
                          env, unroll_length)
  actor.unroll()  # Warm-up (tracing).
  frames = 0
  start, cpu = time.perf_counter(), _cpu_seconds()
  while time.perf_counter() - start < seconds:
    actor.unroll()
    frames += num_envs * unroll_length * repeats
  result_queue.put((frames, time.perf_counter() - start, _cpu_seconds() - cpu))


def _parallel(target, num_processes, args):
  """Runs target(*args, index, queue) in processes.

  Returns:
    (frames per second summed over processes, CPU core-microseconds per
    frame over all of them).
  """
  context = multiprocessing.get_context('spawn')
  result_queue = context.Queue()
  processes = [context.Process(target=target, args=args + (i, result_queue))
               for i in range(num_processes)]
  for p in processes:
    p.start()
  results = [result_queue.get() for _ in processes]
  for p in processes:
    p.join()
  fps = sum(frames / wall for frames, wall, _ in results)
  cost = 1e6 * sum(cpu for _, _, cpu in results) / sum(
      frames for frames, _, _ in results)
  return fps, cost


def learner_throughput(level, torso, batch_size, unroll_length, steps=5,
                       jit_compile=False, bfloat16=False, num_actions=None):
  """Learner-only on a synthetic batch of `level`'s shapes.

  Returns:
    dict: seconds per step, frames/s, and host CPU core-microseconds per
    frame (the whole process: with a GPU, the host side only).
  """
  from scalable_agent import learner as learner_lib  # pylint: disable=g-import-not-at-top
  from scalable_agent import networks  # pylint: disable=g-import-not-at-top
  from scalable_agent import suites  # pylint: disable=g-import-not-at-top
  config = suites.resolve(level)
  if num_actions is None:
    # DMLab-30 levels share IMPALA's 9 actions; the rest need their
    # environment (which DMLab needs DeepMind Lab for).
    if config.suite.name == 'dmlab30':
      num_actions = 9
    else:
      _, env = _make_environment(level, 1, 0)
      num_actions = env.num_actions
      env.close()
  # Before the agent exists: its first call (in the Learner) makes float32
  # variables, and mixed precision starts from the call after it.
  networks.use_bfloat16(bfloat16)
  try:
    agent = config.suite.make_agent(num_actions, torso)
    hparams = learner_lib.dataclasses.replace(
        config.hparams, batch_size=batch_size, unroll_length=unroll_length,
        num_action_repeats=config.suite.num_action_repeats)
    specs = learner_lib.unroll_specs(
        agent, config.suite.observation_spec(config), unroll_length)
    learner = learner_lib.Learner(agent, specs, hparams,
                                  jit_compile=jit_compile)
    batch = learner_lib.zeros_batch(specs, batch_size)
    learner.step(batch)  # Tracing (and compiling).
    float(learner.step(batch).total_loss)
    start, cpu = time.perf_counter(), _cpu_seconds()
    for _ in range(steps):
      float(learner.step(batch).total_loss)
    seconds = (time.perf_counter() - start) / steps
    cpu = _cpu_seconds() - cpu
  finally:
    networks.use_bfloat16(False)
  frames = hparams.frames_per_step
  return {'seconds_per_step': seconds, 'fps': frames / seconds,
          'core_us_per_frame': 1e6 * cpu / (steps * frames)}


_LINE = re.compile(r'frames ([\d,]+) .* queue (\d+)/(\d+)')


def end_to_end(level, torso, num_actors, envs_per_actor, seconds, warmup_s,
               extra_flags=()):
  """The real local system: frames/s and mean queue fill after a warm-up,
  from the learner's console lines."""
  logdir = tempfile.mkdtemp(prefix='impala_benchmark_')
  command = [sys.executable, '-m', 'scalable_agent.main', f'--level={level}',
             f'--num_actors={num_actors}', f'--envs_per_actor={envs_per_actor}',
             f'--logdir={logdir}', '--log_every_s=5', '--eval_every_frames=0',
             *([f'--torso={torso}'] if torso else []), *extra_flags]
  process = subprocess.Popen(command, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
  points = []  # (time, frames, queue fill)
  start = time.time()
  for line in process.stdout:
    match = _LINE.search(line)
    if match and line.startswith('[learner]'):
      points.append((time.time(), int(match.group(1).replace(',', '')),
                     int(match.group(2)) / int(match.group(3))))
      print('   ', line.rstrip(), flush=True)
    if time.time() - start > warmup_s + seconds:
      break
  process.terminate()
  process.wait(timeout=60)
  points = [p for p in points if p[0] - start >= warmup_s]
  if len(points) < 2:
    return {'fps': float('nan'), 'queue_fill': float('nan')}
  (t0, f0, _), (t1, f1, _) = points[0], points[-1]
  return {'fps': (f1 - f0) / (t1 - t0),
          'queue_fill': float(np.mean([q for _, _, q in points]))}


def cost_breakdown(figures, cores):
  """Per-frame costs, the bound their sum implies, and fractions reached.

  Args:
    figures: the measured sections (env, actor, learner, end2end dicts).
    cores: CPU cores of the machine.

  Returns:
    dict with emulation/inference/learner core-microseconds per frame, their
    sum, the bound (frames/s) and end2end as a fraction of it and of env.
  """
  breakdown = {}
  if 'env' in figures:
    breakdown['emulation_core_us'] = figures['env']['core_us_per_frame']
  if 'actor' in figures and 'env' in figures:
    breakdown['inference_core_us'] = (figures['actor']['core_us_per_frame']
                                      - figures['env']['core_us_per_frame'])
  if 'learner' in figures:
    breakdown['learner_core_us'] = figures['learner']['core_us_per_frame']
  parts = ('emulation_core_us', 'inference_core_us', 'learner_core_us')
  if all(p in breakdown for p in parts):
    total = sum(breakdown[p] for p in parts)
    breakdown['total_core_us'] = total
    breakdown['bound_fps'] = cores * 1e6 / total
    if 'end2end' in figures:
      breakdown['end2end_of_bound'] = (figures['end2end']['fps']
                                       / breakdown['bound_fps'])
  if 'end2end' in figures and 'env' in figures:
    breakdown['end2end_of_ceiling'] = (figures['end2end']['fps']
                                       / figures['env']['fps'])
  return breakdown


def machine():
  """What the figures were measured on."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  model = platform.processor()
  try:
    with open('/proc/cpuinfo') as f:
      model = re.search(r'model name\s*:\s*(.*)', f.read()).group(1)
  except (OSError, AttributeError):
    pass
  gpus = [tf.config.experimental.get_device_details(g).get('device_name', '?')
          for g in tf.config.list_physical_devices('GPU')]
  return {'cores': os.cpu_count(), 'cpu': model, 'gpus': gpus,
          'tensorflow': tf.__version__}


def table1(figures, args, info):
  """The end-to-end figure as a row of the paper's Table 1 (architecture,
  CPUs, GPUs, frames/s)."""
  fps = figures.get('end2end', {}).get('fps')
  if fps is None:
    return ''
  architecture = (f'IMPALA (this port), {args.num_actors} actors x '
                  f'{args.envs_per_actor} envs, {args.torso or "default"} '
                  f'torso{", bfloat16" if args.bfloat16 else ""}')
  return tabulate.tabulate(
      [[architecture, info['cores'], len(info['gpus']), f'{fps:,.0f}']],
      headers=['Architecture', 'CPUs', 'GPUs', 'FPS'], tablefmt='github')


def main(argv=None):
  parser = argparse.ArgumentParser(
      description=__doc__.split('\n')[0],
      formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
  parser.add_argument('--level', default='pong',
                      help='Atari game, DMLab-30 level (its shapes for the '
                      'learner; env, actor and end2end need DeepMind Lab) '
                      'or gymnasium id.')
  parser.add_argument('--torso', default=None,
                      choices=['shallow', 'deep', 'nature', 'mlp'],
                      help="Default: the suite's.")
  parser.add_argument('--num_actors', type=int, default=2)
  parser.add_argument('--envs_per_actor', type=int, default=32)
  parser.add_argument('--batch_size', type=int, default=32,
                      help='Learner-only batch (end to end: the defaults '
                      'unless --end2end_flags say otherwise).')
  parser.add_argument('--unroll_length', type=int, default=20)
  parser.add_argument('--jit_compile', action='store_true',
                      help='Learner-only step compiled with XLA.')
  parser.add_argument('--bfloat16', action='store_true',
                      help='The torso in bfloat16 (actor, learner and end '
                      'to end: scalable_agent --bfloat16).')
  parser.add_argument('--seconds', type=float, default=20.,
                      help='Per measurement (end to end: 3x, after 30 s).')
  parser.add_argument('--warmup_s', type=float, default=30.,
                      help='End to end: seconds before measuring (start-up, '
                      'and the queue the actors filled while the learner '
                      'built; DMLab batches of 32 x 100 need about 60).')
  parser.add_argument('--sections', default='env,actor,learner,end2end')
  parser.add_argument('--end2end_flags', default='',
                      help='Extra scalable_agent flags for end to end, '
                      'space-separated (e.g. "--batch_size=32").')
  parser.add_argument('--json', default=None, help='Write the figures here.')
  console.add_flags(parser)
  args = parser.parse_args(argv)
  console.setup(args.tf_logs)
  sections = args.sections.split(',')
  info = machine()
  print(f'{info["cores"]} cores ({info["cpu"]}), GPUs {info["gpus"] or "none"};'
        f' {args.level}, torso {args.torso or "default"}; {args.num_actors} '
        f'actors x {args.envs_per_actor} environments; frames = agent steps'
        ' x action repeats.', flush=True)
  figures = {}
  if 'env' in sections:
    fps, cost = _parallel(_env_worker, args.num_actors,
                          (args.level, args.envs_per_actor, args.seconds))
    figures['env'] = {'fps': fps, 'core_us_per_frame': cost}
    print(f'env only (ceiling)   {fps:10,.0f} frames/s  {cost:7.1f} '
          'core-us/frame', flush=True)
  if 'actor' in sections:
    fps, cost = _parallel(
        _actor_worker, args.num_actors,
        (args.level, args.envs_per_actor, args.unroll_length, args.torso,
         args.bfloat16, args.seconds))
    figures['actor'] = {'fps': fps, 'core_us_per_frame': cost}
    print(f'actor only           {fps:10,.0f} frames/s  {cost:7.1f} '
          'core-us/frame', flush=True)
  if 'learner' in sections:
    learner = learner_throughput(args.level, args.torso, args.batch_size,
                                 args.unroll_length,
                                 jit_compile=args.jit_compile,
                                 bfloat16=args.bfloat16)
    figures['learner'] = learner
    print(f'learner only         {learner["fps"]:10,.0f} frames/s  '
          f'{learner["core_us_per_frame"]:7.1f} core-us/frame  (batch '
          f'{args.batch_size} x unroll {args.unroll_length}: '
          f'{learner["seconds_per_step"]:.3f} s/step'
          f'{", XLA" if args.jit_compile else ""}'
          f'{", bfloat16" if args.bfloat16 else ""})', flush=True)
  if 'end2end' in sections:
    figures['end2end'] = end_to_end(
        args.level, args.torso, args.num_actors, args.envs_per_actor,
        args.seconds * 3, warmup_s=args.warmup_s,
        extra_flags=(args.end2end_flags.split()
                     + (['--bfloat16'] if args.bfloat16 else [])))
    print(f'end to end           {figures["end2end"]["fps"]:10,.0f} frames/s'
          f'  (queue {figures["end2end"]["queue_fill"]:.0%} full on '
          'average)', flush=True)
  breakdown = cost_breakdown(figures, info['cores'])
  if 'total_core_us' in breakdown:
    print(f'per frame: emulation {breakdown["emulation_core_us"]:.1f} + '
          f'inference {breakdown["inference_core_us"]:.1f} + learner '
          f'{breakdown["learner_core_us"]:.1f} = '
          f'{breakdown["total_core_us"]:.1f} core-us -> bound '
          f'{breakdown["bound_fps"]:,.0f} frames/s on {info["cores"]} cores')
  if 'end2end_of_bound' in breakdown:
    print(f'end to end reaches {breakdown["end2end_of_bound"]:.0%} of that '
          'bound')
  if 'end2end_of_ceiling' in breakdown:
    print(f'end to end / env-only ceiling: '
          f'{breakdown["end2end_of_ceiling"]:.0%}')
  row = table1(figures, args, info)
  if row:
    print(row)
  result = {'machine': info, 'config': vars(args), 'figures': figures,
            'breakdown': breakdown}
  if args.json:
    with open(args.json, 'w') as f:
      json.dump(result, f, indent=2)
  return result


if __name__ == '__main__':
  main()
