"""Tests for scalable_agent.transport (learner <-> actor RPC over tf rpc).

Most tests run the server and the client in this process (over localhost
gRPC, the same code path as between machines); one runs the learner in a
subprocess, and restarts it, to show the transport works between processes
and that an actor reconnects by itself.
"""

import collections
import os
import resource
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import tensorflow as tf

from scalable_agent import transport

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

T = 5  # Unroll length + 1.

AgentOutput = collections.namedtuple('AgentOutput', 'action baseline')

# A nest with every dtype the actors send: uint8 frames, float32, int32, bool,
# and a namedtuple inside a dict.
SPECS = {
    'frames': tf.TensorSpec([T, 8, 8, 4], tf.uint8),
    'rewards': tf.TensorSpec([T], tf.float32),
    'done': tf.TensorSpec([T], tf.bool),
    'agent_outputs': AgentOutput(action=tf.TensorSpec([T], tf.int32),
                                 baseline=tf.TensorSpec([T], tf.float32)),
    'marker': tf.TensorSpec([], tf.int32),
}


def make_unrolls(markers, specs=SPECS, seed=0):
  """Random unrolls [k, ...] for SPECS; unroll i has marker markers[i]."""
  rng = np.random.default_rng(seed)
  k = len(markers)

  def field(spec):
    shape = [k] + spec.shape.as_list()
    dtype = spec.dtype.as_numpy_dtype
    if spec.dtype == tf.bool:
      return rng.random(shape) < 0.5
    if spec.dtype.is_integer:
      return rng.integers(0, 255, shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)

  unrolls = tf.nest.map_structure(field, specs)
  unrolls['marker'] = np.asarray(markers, np.int32)
  return unrolls


def assert_nests_equal(expected, actual):
  tf.nest.assert_same_structure(expected, actual)
  for e, a in zip(tf.nest.flatten(expected), tf.nest.flatten(actual)):
    a = a.numpy() if hasattr(a, 'numpy') else a
    assert e.dtype == a.dtype
    np.testing.assert_array_equal(e, a)


def concat_nests(nests):
  return tf.nest.map_structure(lambda *xs: np.concatenate(xs), *nests)


@pytest.fixture
def parameters():
  return [tf.Variable(tf.random.normal([10, 3]), name='w'),
          tf.Variable(tf.zeros([3]), name='b')]


def test_round_trip_exact_and_split_into_messages(parameters):
  # Atari-sized frames: 21*84*84*4 bytes = 0.59 MB per unroll, so 8 unrolls
  # need two messages under the 4 MiB limit.
  specs = dict(SPECS, frames=tf.TensorSpec([21, 84, 84, 4], tf.uint8))
  with transport.LearnerServer('localhost:0', specs, 16, parameters) as server:
    client = transport.ActorClient(server.address, specs, connect_timeout_s=10)
    assert client.unrolls_per_message() == 6
    sent = make_unrolls(list(range(8)), specs)
    client.send(sent)
    assert server.queue_size() == 8
    it = iter(server.dataset(batch_size=4))
    received = concat_nests([tf.nest.map_structure(lambda t: t.numpy(),
                                                   next(it)) for _ in range(2)])
    assert_nests_equal(sent, received)


def test_dataset_batches_are_ordered_and_end_on_close(parameters):
  server = transport.LearnerServer('localhost:0', SPECS, 8, parameters)
  client = transport.ActorClient(server.address, SPECS, connect_timeout_s=10)
  sent = make_unrolls(list(range(7)))
  # Several sends of various sizes, then batches of 3.
  for lo, hi in [(0, 1), (1, 4), (4, 7)]:
    client.send(tf.nest.map_structure(lambda x, lo=lo, hi=hi: x[lo:hi], sent))
  it = iter(server.dataset(batch_size=3))
  for lo in (0, 3):
    batch = next(it)
    assert batch['frames'].shape == [3, T, 8, 8, 4]
    assert_nests_equal(
        tf.nest.map_structure(lambda x, lo=lo: x[lo:lo + 3], sent), batch)
  server.close()
  # One unroll left, fewer than a batch: the dataset ends.
  with pytest.raises(StopIteration):
    next(it)


def test_backpressure_blocks_without_loss_or_duplicates(parameters):
  server = transport.LearnerServer('localhost:0', SPECS, 2, parameters)
  # A short RPC deadline, so that the blocked send also goes through the
  # timeout path (the learner keeps the message; the client waits for its
  # receipt instead of resending).
  client = transport.ActorClient(server.address, SPECS, connect_timeout_s=10,
                                 rpc_timeout_s=0.3)
  other = transport.ActorClient(server.address, SPECS, connect_timeout_s=10)
  client.send(make_unrolls([0, 1]))
  assert server.queue_size() == 2

  started, finished = threading.Event(), threading.Event()

  def third_send():
    started.set()
    client.send(make_unrolls([2]))
    finished.set()

  thread = threading.Thread(target=third_send, daemon=True)
  thread.start()
  assert started.wait(10)
  # The queue is full: the send must not complete. (Proving that something
  # does not happen needs some waiting; 1 s covers 3 RPC deadlines.)
  assert not finished.wait(1.0)
  # A blocked enqueue does not block the server's other methods.
  assert other.fetch_parameters(None).version == 0
  assert server.queue_size() == 2

  it = iter(server.dataset(batch_size=1, prefetch=0))
  assert int(next(it)['marker'][0]) == 0
  assert finished.wait(30)  # Room was made: the third send completes.
  thread.join(timeout=10)
  assert not thread.is_alive()
  assert [int(next(it)['marker'][0]) for _ in range(2)] == [1, 2]
  assert server.queue_size() == 0  # Exactly once: no duplicate of unroll 2.
  server.close()


def test_resent_message_is_enqueued_once(parameters):
  # What the client does when it cannot tell whether the learner got a
  # message: resend it with the same sequence number.
  with transport.LearnerServer('localhost:0', SPECS, 4, parameters) as server:
    client = transport.ActorClient(server.address, SPECS, connect_timeout_s=10)
    encoded = [tf.io.serialize_tensor(x)
               for x in tf.nest.flatten(make_unrolls([5]))]
    client._enqueue(encoded, 1)  # pylint: disable=protected-access
    client._enqueue(encoded, 1)  # pylint: disable=protected-access
    assert server.queue_size() == 1
    client._enqueue(encoded, 2)  # pylint: disable=protected-access
    assert server.queue_size() == 2


def test_close_fails_a_waiting_send(parameters):
  server = transport.LearnerServer('localhost:0', SPECS, 1, parameters)
  client = transport.ActorClient(server.address, SPECS, connect_timeout_s=10)
  client.send(make_unrolls([0]))
  errors = []

  def blocked_send():
    try:
      client.send(make_unrolls([1]))
    except transport.TransportError as e:
      errors.append(e)

  thread = threading.Thread(target=blocked_send, daemon=True)
  thread.start()
  # Wait until the learner holds the message (validated, waiting for room).
  client_id = tf.constant(client._client_id)  # pylint: disable=protected-access
  while server._received.lookup(client_id).numpy() < 2:  # pylint: disable=protected-access
    time.sleep(0.01)
  server.close()
  thread.join(30)
  assert len(errors) == 1
  assert isinstance(errors[0], transport.LearnerClosedError)


def test_wrong_dtype_or_shape_is_rejected_and_server_keeps_serving(
    parameters):
  server = transport.LearnerServer('localhost:0', SPECS, 4, parameters)
  good = transport.ActorClient(server.address, SPECS, connect_timeout_s=10)

  # The client checks its unrolls against its specs before sending.
  with pytest.raises(transport.UnrollRejectedError, match="'rewards'.*float64"):
    good.send(dict(make_unrolls([0]),
                   rewards=np.zeros([1, T], np.float64)))
  with pytest.raises(transport.UnrollRejectedError,
                     match=r"missing \['agent_outputs/baseline'\]"):
    good.send(dict(make_unrolls([0]),
                   agent_outputs={'action': np.zeros([1, T], np.int32)}))
  with pytest.raises(transport.UnrollRejectedError,
                     match="field 'rewards' has 2 unrolls, field "
                           "'agent_outputs/action' has 1"):
    good.send(dict(make_unrolls([0]), rewards=np.zeros([2, T], np.float32)))
  # A mismatch with the learner's specs is caught on connection.
  stale_specs = dict(SPECS, rewards=tf.TensorSpec([T], tf.float64))
  with pytest.raises(transport.UnrollRejectedError, match='disagree'):
    transport.ActorClient(server.address, stale_specs, connect_timeout_s=10)

  # The learner checks on its own, whatever the actor checked: messages
  # encoded here, past the client's checks. Wrong dtype, then wrong shape.
  def enqueue_unchecked(unrolls):
    encoded = [tf.io.serialize_tensor(x) for x in tf.nest.flatten(unrolls)]
    good._enqueue(encoded, 1)  # pylint: disable=protected-access

  with pytest.raises(transport.UnrollRejectedError,
                     match="field 'rewards' has dtype float64, the learner "
                           'expects float32'):
    enqueue_unchecked(dict(make_unrolls([0]),
                           rewards=np.zeros([1, T], np.float64)))
  wrong_shape = dict(SPECS, frames=tf.TensorSpec([T, 8, 8, 3], tf.uint8))
  with pytest.raises(transport.UnrollRejectedError,
                     match=r"field 'frames' declares shape \[1,5,8,8,3\], "
                           r'the learner expects \[k,5,8,8,4\]'):
    enqueue_unchecked(make_unrolls([0], wrong_shape))
  assert server.queue_size() == 0

  sent = make_unrolls([7])
  good.send(sent)
  assert_nests_equal(sent, next(iter(server.dataset(batch_size=1))))
  server.close()


def test_out_of_range_or_non_finite_values_are_refused_on_both_paths(
    parameters):
  # Issue 10, defect 1: a well-shaped unroll with an action outside the
  # action set crashed the learner; a NaN reward poisoned every parameter.
  ranges = {'agent_outputs/action': (0, 6), 'marker': (0, 100)}
  server = transport.LearnerServer('localhost:0', SPECS, 4, parameters,
                                   value_ranges=ranges)
  client = transport.ActorClient(server.address, SPECS, connect_timeout_s=10)
  queue = transport.UnrollQueue(SPECS, 4, value_ranges=ranges)

  def with_action(value, marker=0):
    unrolls = make_unrolls([marker])
    unrolls['agent_outputs'] = unrolls['agent_outputs']._replace(
        action=np.full([1, T], value, np.int32))
    return unrolls

  nan_reward = with_action(5)
  nan_reward['rewards'][0, 2] = np.nan
  cases = [
      (with_action(9), r"'agent_outputs/action' has values in \[9, 9\], "
       r'the learner takes \[0, 6\)'),
      (with_action(-1), r"'agent_outputs/action' has values in \[-1, -1\]"),
      (with_action(5, marker=100),
       r"'marker' has values in \[100, 100\]"),
      (nan_reward, "'rewards' has .*non-finite"),
  ]
  for unrolls, message in cases:
    # Over the wire: the learner's own in-graph check (the client does
    # not know the ranges).
    with pytest.raises(transport.UnrollRejectedError, match=message):
      client.send(unrolls)
    # In-process: the queue's check.
    with pytest.raises(transport.UnrollRejectedError, match=message):
      queue.enqueue(unrolls)
  assert server.queue_size() == 0 and queue.queue_size() == 0
  good = with_action(5)
  client.send(good)  # The learner keeps serving.
  assert_nests_equal(good, next(iter(server.dataset(batch_size=1))))
  with pytest.raises(ValueError, match='do not have'):
    transport.UnrollQueue(SPECS, 4, value_ranges={'actions': (0, 6)})
  server.close()


def test_a_header_declaring_a_huge_tensor_is_refused_before_allocation(
    parameters):
  # Issue 10, defect 2: 16 bytes declaring a [1, 2^30] float32 tensor made
  # the learner allocate 4 GiB before the shape check.
  from tensorflow.core.framework import tensor_pb2  # pylint: disable=g-import-not-at-top
  from tensorflow.core.framework import tensor_shape_pb2  # pylint: disable=g-import-not-at-top
  server = transport.LearnerServer('localhost:0', SPECS, 4, parameters)
  client = transport.ActorClient(server.address, SPECS, connect_timeout_s=10)
  header = tensor_pb2.TensorProto(
      dtype=tf.float32.as_datatype_enum,
      tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[
          tensor_shape_pb2.TensorShapeProto.Dim(size=1),
          tensor_shape_pb2.TensorShapeProto.Dim(size=2 ** 30)]))
  unrolls = make_unrolls([0])
  names = transport.specs.leaf_names(SPECS)
  encoded = [tf.io.serialize_tensor(x) for x in tf.nest.flatten(unrolls)]
  encoded[names.index('rewards')] = tf.constant(header.SerializeToString())
  before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  with pytest.raises(transport.UnrollRejectedError,
                     match=r"'rewards' declares shape \[1,1073741824\]"):
    client._enqueue(encoded, 1)  # pylint: disable=protected-access
  grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
  assert grown_kib < 512 * 1024, f'the learner grew by {grown_kib} KiB'
  # Too many unrolls declared for one message, with little content.
  header.tensor_shape.dim[0].size = 10 ** 9
  header.tensor_shape.dim[1].size = T
  encoded[names.index('rewards')] = tf.constant(header.SerializeToString())
  with pytest.raises(transport.UnrollRejectedError, match='k <= '):
    client._enqueue(encoded, 1)  # pylint: disable=protected-access
  assert server.queue_size() == 0
  # Malformed bytes (garbage, a truncated tensor, a header whose content
  # is cut short) are refused naming the field; the learner keeps serving.
  whole = tf.io.serialize_tensor(unrolls['rewards']).numpy()
  short_content = tensor_pb2.TensorProto()
  short_content.ParseFromString(whole)
  short_content.tensor_content = short_content.tensor_content[:-4]
  for field in ('rewards', 'frames'):
    encoded = [tf.io.serialize_tensor(x) for x in tf.nest.flatten(unrolls)]
    whole = encoded[names.index(field)].numpy()
    for bad in (b'\xff\xfe garbage \x00\x01', whole[:-7]):
      encoded[names.index(field)] = tf.constant(bad)
      with pytest.raises(transport.UnrollRejectedError,
                         match=f"field '{field}' is not a well-formed"):
        client._enqueue(encoded, 1)  # pylint: disable=protected-access
  encoded = [tf.io.serialize_tensor(x) for x in tf.nest.flatten(unrolls)]
  encoded[names.index('rewards')] = tf.constant(
      short_content.SerializeToString())
  with pytest.raises(transport.UnrollRejectedError, match="'rewards'"):
    client._enqueue(encoded, 1)  # pylint: disable=protected-access
  client.send(unrolls)  # And it keeps serving.
  assert server.queue_size() == 1
  server.close()


def test_an_actor_of_another_run_with_identical_specs_is_refused(
    parameters):
  # Issue 10, defect 8: Space Invaders unrolls have Pong's specs, and an
  # actor of another torso sends the same unrolls.
  with transport.LearnerServer(
      'localhost:0', SPECS, 2, parameters,
      run_description='levels=pong torso=shallow') as server:
    for other in ('levels=space_invaders torso=shallow',
                  'levels=pong torso=deep'):
      with pytest.raises(transport.UnrollRejectedError,
                         match=f'different runs.*actor: {other}'):
        transport.ActorClient(server.address, SPECS, connect_timeout_s=10,
                              run_description=other)
    client = transport.ActorClient(server.address, SPECS,
                                   connect_timeout_s=10,
                                   run_description='levels=pong torso=shallow')
    client.send(make_unrolls([0]))
    assert server.queue_size() == 1
    assert server.num_clients() == 1  # What a starved learner reports.


def test_parameters_over_4mib_in_chunks_with_versions():
  # 2,100,007 floats = 8.4 MB: three chunks.
  variables = [tf.Variable(tf.random.normal([1000, 1500])),
               tf.Variable(tf.random.normal([600000])),
               tf.Variable(tf.random.normal([7]))]
  with transport.LearnerServer('localhost:0', SPECS, 2, variables) as server:
    server.publish(3)
    client = transport.ActorClient(server.address, SPECS, connect_timeout_s=10)
    assert client.learner_info.num_chunks == 3
    params = client.fetch_parameters(known_version=None)
    assert params.version == 3
    assert len(params.values) == 3
    for value, variable in zip(params.values, variables):
      assert value.dtype == np.float32
      np.testing.assert_array_equal(value, variable.numpy())
    assert client.fetch_parameters(known_version=3) is None  # No transfer.

    # A new snapshot is fetched; changing the variables without publishing
    # does not change what actors see.
    variables[0].assign_add(tf.ones_like(variables[0]))
    expected = [v.numpy() for v in variables]
    server.publish(4)
    variables[0].assign(tf.zeros_like(variables[0]))
    params = client.fetch_parameters(known_version=3)
    assert params.version == 4
    for value, e in zip(params.values, expected):
      np.testing.assert_array_equal(value, e)

    # Torn read: the learner publishes version 6 between the reads of chunks
    # 0 and 1 of version 5; the client notices and fetches again.
    server.publish(5)
    request = client._request  # pylint: disable=protected-access
    calls = []

    def request_and_publish(method, args, specs):
      value = request(method, args, specs)
      calls.append(method)
      if method == 'get_parameters' and len(calls) == 2:
        server.publish(6)
      return value

    client._request = request_and_publish  # pylint: disable=protected-access
    params = client.fetch_parameters(known_version=4)
    assert params.version == 6
    assert calls.count('get_parameters') == 2 + 3  # 2 torn + 3 consistent.
    np.testing.assert_array_equal(params.values[0], np.zeros([1000, 1500]))


def test_unreachable_learner_gives_clear_error_within_timeout():
  address = f'localhost:{transport.free_port()}'
  start = time.monotonic()
  with pytest.raises(transport.LearnerUnavailableError) as info:
    transport.ActorClient(address, SPECS, connect_timeout_s=1.0)
  assert time.monotonic() - start < 5.0
  assert address in str(info.value)
  assert '--learner_address' in str(info.value)


_LEARNER_PROCESS = r'''
import sys
import numpy as np
import tensorflow as tf
sys.path.insert(0, {repo_root!r})
from scalable_agent import transport
from tests import test_transport as t

port, generation = int(sys.argv[1]), int(sys.argv[2])
params = [tf.Variable(np.arange(6, dtype=np.float32).reshape(2, 3) *
                      generation)]
server = transport.LearnerServer(f'localhost:{{port}}', t.SPECS, 4, params)
batch = next(iter(server.dataset(batch_size=2)))
print('BATCH', batch['marker'].numpy().tolist(),
      int(batch['frames'].numpy().astype(np.int64).sum()), flush=True)
server.close()
'''


def _start_learner(port, generation):
  return subprocess.Popen(
      [sys.executable, '-c', _LEARNER_PROCESS.format(repo_root=REPO_ROOT),
       str(port), str(generation)],
      cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _batch_line(process):
  out, err = process.communicate(timeout=60)
  lines = [l for l in out.splitlines() if l.startswith('BATCH')]
  assert process.returncode == 0 and lines, err[-3000:]
  return lines[0].split(' ', 1)[1]


def test_between_processes_with_learner_restart():
  port = transport.free_port()
  learner = _start_learner(port, generation=1)
  try:
    # The client waits for the learner to come up (TF import takes seconds).
    client = transport.ActorClient(f'localhost:{port}', SPECS,
                                   connect_timeout_s=60, rpc_timeout_s=2.0,
                                   reconnect_timeout_s=60)
    params = client.fetch_parameters(known_version=None)
    np.testing.assert_array_equal(params.values[0],
                                  np.arange(6).reshape(2, 3))
    sent = make_unrolls([11, 12])
    client.send(sent)
    assert _batch_line(learner) == (
        f"[11, 12] {int(sent['frames'].astype(np.int64).sum())}")

    # The learner is gone; a new one comes up on the same address. The same
    # client reconnects by itself.
    learner = _start_learner(port, generation=2)
    # Same version number (0) as the first learner's, but a new learner: the
    # parameters are fetched again.
    params2 = client.fetch_parameters(known_version=params.version)
    assert params2.version == params.version
    np.testing.assert_array_equal(params2.values[0],
                                  2 * np.arange(6).reshape(2, 3))
    sent = make_unrolls([21, 22], seed=1)
    client.send(sent)
    assert _batch_line(learner) == (
        f"[21, 22] {int(sent['frames'].astype(np.int64).sum())}")
  finally:
    learner.kill()
    learner.wait(timeout=30)
