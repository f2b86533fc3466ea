r"""Throughput of scalable_agent.transport between two processes.

Not a test: prints figures (copied into BUILD_NOTES.md, transport section).

  .venv/bin/python benchmarks/transport_benchmark.py [--seconds 6 --rounds 5]

Starts a learner process (this script with --serve) and measures from this
process, the actor:

1. Wire encodings of an Atari unroll's frames (uint8 [21, 84, 84, 4]) over
   tf rpc, into a method that decodes and drops them (no queue):
     raw uint8 tensor      (tf rpc writes uint8 as varints in int_val)
     bitcast to float32    ([21, 84, 84] float32 in float_val, 4 B/value)
     serialize_tensor      (a tf.string holding a TensorProto, raw bytes)
   Each with as many unrolls per call as fit in the 4 MiB message limit.
2. End to end: `ActorClient.send` of Atari unrolls (frames + small fields)
   into a `LearnerServer` queue drained by `dataset(32)` in the learner.
3. `fetch_parameters` of ~0.7M and ~1.6M float32 parameters, and the check
   that is done when the version has not changed.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from scalable_agent import transport  # pylint: disable=g-import-not-at-top

T = 21  # unroll_length 20 + 1.
FRAME_SHAPE = [T, 84, 84, 4]
NUM_ACTIONS = 6
UNROLL_SPECS = {
    'frames': tf.TensorSpec(FRAME_SHAPE, tf.uint8),
    'rewards': tf.TensorSpec([T], tf.float32),
    'done': tf.TensorSpec([T], tf.bool),
    'actions': tf.TensorSpec([T], tf.int32),
    'baseline': tf.TensorSpec([T], tf.float32),
    'policy_logits': tf.TensorSpec([T, NUM_ACTIONS], tf.float32),
}
# ~0.7M and ~1.6M float32 parameters (the IMPALA shallow and deep nets are in
# this range).
PARAMETER_SIZES = {'0.7M': [[700_000]], '1.6M': [[1000, 1000], [600_000]]}


def serve():
  """Learner side: encoding sinks, a LearnerServer per parameter size."""
  sinks = {}

  @tf.function(input_signature=[tf.TensorSpec([None] + FRAME_SHAPE, tf.uint8)])
  def sink_raw(frames):
    return tf.shape(frames)[0]

  @tf.function(input_signature=[
      tf.TensorSpec([None] + FRAME_SHAPE[:-1], tf.float32)])
  def sink_bitcast(frames):
    return tf.shape(tf.bitcast(frames, tf.uint8))[0]

  @tf.function(input_signature=[tf.TensorSpec([], tf.string)])
  def sink_serialized(encoded):
    return tf.shape(tf.io.parse_tensor(encoded, tf.uint8))[0]

  sinks = {'raw': sink_raw, 'bitcast': sink_bitcast,
           'serialized': sink_serialized}
  sink_address = f'localhost:{transport.free_port()}'
  sink_server = tf.distribute.experimental.rpc.Server.create('grpc',
                                                             sink_address)
  for name, fn in sinks.items():
    sink_server.register(name, fn)
  sink_server.start()

  learners = {}
  for name, shapes in PARAMETER_SIZES.items():
    variables = [tf.Variable(tf.random.normal(s)) for s in shapes]
    learners[name] = transport.LearnerServer('localhost:0', UNROLL_SPECS, 64,
                                             variables)
  # One consumer, as the learner's training loop would be.
  dataset = learners['1.6M'].dataset(batch_size=32)
  print(json.dumps({'sinks': sink_address,
                    **{k: v.address for k, v in learners.items()}}),
        flush=True)
  for _ in dataset:
    pass


def make_unrolls(k, rng):
  return {
      'frames': rng.integers(0, 256, [k] + FRAME_SHAPE, dtype=np.uint8),
      'rewards': rng.standard_normal([k, T]).astype(np.float32),
      'done': rng.random([k, T]) < 0.01,
      'actions': rng.integers(0, NUM_ACTIONS, [k, T]).astype(np.int32),
      'baseline': rng.standard_normal([k, T]).astype(np.float32),
      'policy_logits': rng.standard_normal([k, T, NUM_ACTIONS]).astype(
          np.float32),
  }


def timed(fn, seconds):
  """Calls fn() repeatedly for about `seconds`; returns seconds per call."""
  calls, start = 0, time.perf_counter()
  while time.perf_counter() - start < seconds:
    fn()
    calls += 1
  return (time.perf_counter() - start) / calls


def interleaved(cases, seconds, rounds):
  """Times each of {label: fn} in `rounds` interleaved rounds.

  The machine is shared, so cases are interleaved (a load spike hits all of
  them) and each is reported by its median round (and the best one).

  Returns:
    {label: (median seconds per call, best seconds per call)}.
  """
  for fn in cases.values():
    fn()  # Warm-up: tracing, connection.
  times = {label: [] for label in cases}
  for _ in range(rounds):
    for label, fn in cases.items():
      times[label].append(timed(fn, seconds / rounds))
  return {label: (float(np.median(t)), min(t)) for label, t in times.items()}


def bench_encodings(address, seconds, rounds, rng):
  client = tf.distribute.experimental.rpc.Client.create(
      'grpc', address, name='bench-sinks', timeout_in_ms=60_000)
  frame_bytes = int(np.prod(FRAME_SHAPE))
  out = tf.TensorSpec([], tf.int32)
  print('\n1. Frames encodings, one call at a time (uint8 [21,84,84,4] = '
        f'{frame_bytes / 1e6:.3f} MB per unroll); median (best) of '
        f'{rounds} rounds')
  # Unrolls per call under 4 MiB: raw uint8 costs up to 2 B per value.
  encodings = {
      'raw uint8 tensor': ('raw', 3, tf.constant),
      'bitcast float32': ('bitcast', 6,
                          lambda f: tf.bitcast(tf.constant(f), tf.float32)),
      'serialize_tensor': ('serialized', 6, tf.io.serialize_tensor),
  }
  cases, sizes = {}, {}
  for label, (method, k, encode) in encodings.items():
    frames = rng.integers(0, 256, [k] + FRAME_SHAPE, dtype=np.uint8)

    def call(method=method, frames=frames, encode=encode):
      result = client.call(method, [encode(frames)], out)
      if not result.is_ok():
        raise RuntimeError(result.get_error()[1].numpy()[:300])

    cases[label], sizes[label] = call, k
  for label, (median, best) in interleaved(cases, seconds, rounds).items():
    k = sizes[label]
    print(f'  {label:18s} {k} unrolls/call: {k / median:7.1f} unrolls/s '
          f'{k * frame_bytes / median / 1e6:6.1f} MB/s of frames '
          f'(best {k * frame_bytes / best / 1e6:6.1f}), '
          f'{median * 1e3:6.1f} ms/call')


def bench_send(address, seconds, rounds, rng):
  client = transport.ActorClient(address, UNROLL_SPECS, connect_timeout_s=60)
  unroll_bytes = sum(s.dtype.size * s.shape.num_elements()
                     for s in tf.nest.flatten(UNROLL_SPECS))
  print(f'\n2. ActorClient.send -> LearnerServer queue -> dataset(32), '
        f'{unroll_bytes / 1e6:.3f} MB per unroll, '
        f'{client.unrolls_per_message()} unrolls per message')
  ks = (1, 6, 32)
  unrolls = {k: make_unrolls(k, rng) for k in ks}
  cases = {k: (lambda u=unrolls[k]: client.send(u)) for k in ks}
  for k, (median, best) in interleaved(cases, seconds, rounds).items():
    print(f'  send(k={k:2d}): {k / median:7.1f} unrolls/s '
          f'{k * unroll_bytes / median / 1e6:6.1f} MB/s '
          f'(best {k * unroll_bytes / best / 1e6:6.1f}), '
          f'{median * 1e3:6.1f} ms/send')


def bench_parameters(addresses, seconds, rounds):
  print('\n3. fetch_parameters (float32)')
  cases, sizes = {}, {}
  for name in PARAMETER_SIZES:
    client = transport.ActorClient(addresses[name], UNROLL_SPECS,
                                   connect_timeout_s=60)
    info = client.learner_info
    sizes[name] = (sum(int(np.prod(s)) for s in info.parameter_shapes),
                   info.num_chunks)
    version = client.fetch_parameters(None).version
    cases[name] = lambda c=client: c.fetch_parameters(None)
    cases[name + ' unchanged'] = lambda c=client, v=version: (
        c.fetch_parameters(v))
  results = interleaved(cases, seconds, rounds)
  for name, (size, chunks) in sizes.items():
    median, best = results[name]
    unchanged = results[name + ' unchanged'][0]
    print(f'  {name} ({size} values, {size * 4 / 1e6:.1f} MB, {chunks} '
          f'chunk(s)): fetch {median * 1e3:5.1f} ms (best {best * 1e3:5.1f}; '
          f'{size * 4 / median / 1e6:5.1f} MB/s); unchanged version '
          f'{unchanged * 1e3:5.2f} ms')


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--serve', action='store_true', help=argparse.SUPPRESS)
  parser.add_argument('--seconds', type=float, default=6.0,
                      help='Duration of each measurement (all rounds).')
  parser.add_argument('--rounds', type=int, default=5,
                      help='Interleaved rounds per measurement.')
  args = parser.parse_args()
  if args.serve:
    serve()
    return

  learner = subprocess.Popen([sys.executable, __file__, '--serve'],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             text=True)
  try:
    addresses = json.loads(learner.stdout.readline())
    rng = np.random.default_rng(0)
    print(f'TF {tf.__version__}, {os.cpu_count()} CPUs, load average '
          f'{os.getloadavg()[0]:.1f} (shared machine: figures are noisy)')
    bench_encodings(addresses['sinks'], args.seconds, args.rounds, rng)
    bench_send(addresses['1.6M'], args.seconds, args.rounds, rng)
    bench_parameters(addresses, args.seconds, args.rounds)
    print(f'\nload average at the end {os.getloadavg()[0]:.1f}')
  finally:
    learner.kill()
    learner.wait()


if __name__ == '__main__':
  main()
