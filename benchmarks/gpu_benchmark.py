r"""The GPU path in one command: learner-only sweeps, then end to end.

    .venv/bin/python benchmarks/gpu_benchmark.py --output docs/benchmarks/gpu

Not a test: prints figures and writes them (`gpu.json`, `gpu.md`) for
`docs/benchmarks/`, with the hardware. On the machine it runs on:

1. Learner only (`scalable_agent.benchmark.learner_throughput`), on
   synthetic batches of the level's shapes: each torso (shallow, deep) x
   precision (float32, bfloat16 torso) x with and without XLA
   (`jit_compile`) x each batch size (32 and larger), unroll 20.
   frames/s = batch x unroll x 4 / seconds per step.
2. End to end (`scalable_agent.benchmark.end_to_end`): the real local
   system with the learner on the GPU and the actors on the CPU cores, for
   each torso and precision, at `--end2end_batch` fresh unrolls and no
   replay (the paper's configuration; one Atari game's defaults replay half
   of a batch of 4, which would halve frames/s for the same learner work).

On a machine without a GPU the same command runs on the CPU (the test does
that with a tiny configuration).
For orientation: the paper's learner did ~30K frames/s with the deep net on
one P100; the whole distributed system peaked at 250K frames/s.
"""

import argparse
import itertools
import json
import os
import sys

import tabulate

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from scalable_agent import benchmark  # pylint: disable=wrong-import-position
from scalable_agent import console  # pylint: disable=wrong-import-position


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--level', default='pong')
  parser.add_argument('--torsos', default='shallow,deep')
  parser.add_argument('--batch_sizes', default='32,128,256')
  parser.add_argument('--unroll_length', type=int, default=20)
  parser.add_argument('--steps', type=int, default=10,
                      help='Timed learner steps per configuration.')
  parser.add_argument('--xla', default='off,on')
  parser.add_argument('--precisions', default='float32,bfloat16')
  parser.add_argument('--num_actors', type=int, default=None,
                      help='End to end (default: cores - 2, at least 1).')
  parser.add_argument('--envs_per_actor', type=int, default=32)
  parser.add_argument('--end2end_batch', type=int, default=32)
  parser.add_argument('--end2end_seconds', type=float, default=60.)
  parser.add_argument('--skip_end2end', action='store_true')
  parser.add_argument('--output', default='.')
  console.add_flags(parser)
  args = parser.parse_args(argv)
  console.setup(args.tf_logs)
  info = benchmark.machine()
  print(f'{info["cores"]} cores ({info["cpu"]}); GPUs: '
        f'{info["gpus"] or "none (CPU path)"}; TensorFlow '
        f'{info["tensorflow"]}', flush=True)
  rows = []
  precisions = args.precisions.split(',')
  for torso, precision, xla, batch in itertools.product(
      args.torsos.split(','), precisions, args.xla.split(','),
      [int(b) for b in args.batch_sizes.split(',')]):
    figures = benchmark.learner_throughput(
        args.level, torso, batch, args.unroll_length, steps=args.steps,
        jit_compile=(xla == 'on'), bfloat16=(precision == 'bfloat16'))
    rows.append(dict(part='learner', torso=torso, precision=precision,
                     xla=xla, batch=batch, **figures))
    print(f'learner {torso:8s} {precision:8s} XLA {xla:3s} batch '
          f'{batch:4d}: {figures["fps"]:10,.0f} frames/s '
          f'({figures["seconds_per_step"] * 1e3:7.1f} ms/step)', flush=True)
  if not args.skip_end2end:
    num_actors = args.num_actors or max(1, (info['cores'] or 3) - 2)
    for torso, precision in itertools.product(args.torsos.split(','),
                                              precisions):
      figures = benchmark.end_to_end(
          args.level, torso, num_actors, args.envs_per_actor,
          args.end2end_seconds, warmup_s=60,
          extra_flags=[f'--batch_size={args.end2end_batch}',
                       '--replay_capacity=0'] + (
              ['--bfloat16'] if precision == 'bfloat16' else []))
      rows.append(dict(part='end2end', torso=torso, precision=precision,
                       xla='off', batch=args.end2end_batch,
                       actors=num_actors, **figures))
      print(f'end to end {torso:8s} {precision:8s} batch '
            f'{args.end2end_batch}, {num_actors} actors x '
            f'{args.envs_per_actor}: {figures["fps"]:10,.0f} frames/s '
            f'(queue {figures["queue_fill"]:.0%} full)', flush=True)
  os.makedirs(args.output, exist_ok=True)
  with open(os.path.join(args.output, 'gpu.json'), 'w') as f:
    json.dump({'machine': info, 'config': vars(args), 'rows': rows}, f,
              indent=2)
  table = tabulate.tabulate(
      [[r['part'], r['torso'], r['precision'], r['xla'], r['batch'],
        f'{r["fps"]:,.0f}',
        f'{r["seconds_per_step"] * 1e3:.1f}' if 'seconds_per_step' in r
        else '-'] for r in rows],
      headers=['part', 'torso', 'precision', 'XLA', 'batch', 'frames/s',
               'ms/step'], tablefmt='github')
  lines = [f'Machine: {info["cores"]} cores ({info["cpu"]}), GPUs '
           f'{info["gpus"] or "none"}, TensorFlow {info["tensorflow"]}.', '',
           table]
  with open(os.path.join(args.output, 'gpu.md'), 'w') as f:
    f.write('\n'.join(lines) + '\n')
  return rows


if __name__ == '__main__':
  main()
