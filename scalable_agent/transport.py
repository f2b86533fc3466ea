"""Actor -> learner transport over TensorFlow's own gRPC runtime.

IMPALA actors run in separate processes (possibly on other machines). Each one
sends whole unrolls to a bounded FIFO queue hosted by the learner and pulls the
newest parameters from the learner. The released TF1 scalable_agent did this
with a TF1 cluster (a `tf.FIFOQueue` with a shared name on the learner task and
variables read through the distributed runtime). TF2 has no such cluster for
eager programs, so this module rebuilds the two channels on
`tf.distribute.experimental.rpc`: a gRPC server that runs registered
`tf.function`s. Only TensorProtos cross the network (no pickle, nothing that
can run code when decoded).

Learner side (`LearnerServer`):

  server = transport.LearnerServer('[::]:8001', unroll_specs,
                                   queue_capacity=64,
                                   parameters=agent.trainable_variables)
  for batch in server.dataset(batch_size=32):  # nest of [B, ...] tensors
    train_step(batch)
    server.publish(step)                          # snapshot of the variables

Actor side (`ActorClient`):

  client = transport.ActorClient('learner-host:8001', unroll_specs)
  params = client.fetch_parameters(known_version=None)  # Parameters or None
  client.send(unrolls)  # nest of numpy arrays [k, ...]; blocks while full

`unroll_specs` is a nest (dict, namedtuple, tuple, ...) of `tf.TensorSpec`s
describing ONE unroll without batch dimension, e.g.

  {'frames': tf.TensorSpec([T + 1, 84, 84, 4], tf.uint8),
   'rewards': tf.TensorSpec([T + 1], tf.float32), ...}

Wire design (the figures are in BUILD_NOTES.md, transport section):

* Message limit. tf rpc's gRPC channels keep gRPC's default 4 MiB limit on
  received messages and TF exposes no option to raise it; a bigger message
  fails with RESOURCE_EXHAUSTED. `ActorClient.send` therefore splits a batch of
  unrolls into as many `enqueue` calls as needed (sizes computed from the
  encoded bytes), and parameters are served in chunks of at most
  `_PARAMETER_CHUNK_SIZE` float32 values.
* Encoding. tf rpc puts tensors in TensorProtos with `AsProtoField`, which
  writes uint8 values as varints in `int_val` (up to 2 bytes per value, slow to
  encode). Every unroll field is therefore sent as `tf.io.serialize_tensor` of
  the batched array: one tf.string scalar holding a TensorProto whose payload
  is the raw bytes (`tensor_content`). The TensorProto also carries the dtype
  and shape, which the learner checks before decoding.
* Backpressure. The learner's `enqueue` method blocks inside the server while
  the queue is full. tf rpc's server is a synchronous gRPC server, which serves
  other calls (parameter fetches, other actors) on other threads while one
  handler is blocked, and the queue's enqueue is an asynchronous kernel that
  holds no TF thread while it waits.
* Exactly-once delivery. The TF rpc server ignores client deadlines and
  cancellations: an `enqueue` that the client gave up on still lands in the
  queue once there is room. So each client numbers its messages and the
  learner records, per client, the last sequence number received (validated,
  waiting for room) and completed (in the queue). After a timeout or a broken
  connection the client asks (`progress`) before resending, and the learner
  drops a message whose number it has already received.
* Versioned parameters. `publish(version)` copies all variables into one flat
  float32 buffer under a `tf.CriticalSection`, so each `get_parameters(i)`
  returns a chunk and the version of the snapshot it was cut from. A client
  that sees different versions across chunks (the learner published between
  two chunk reads: a torn read) fetches again.
* Reconnection. tf rpc calls wait for the channel to be ready (gRPC
  wait_for_ready), so a call to a learner that is down waits for its deadline
  and fails with DEADLINE_EXCEEDED, and a call in flight when the learner dies
  fails with UNAVAILABLE. The client then builds a fresh channel (a fresh
  channel connects at once, while the old one may sit in gRPC's reconnect
  backoff for seconds) and retries until `reconnect_timeout_s`.
"""

import atexit
import collections
import errno
import logging
import re
import socket
import threading
import time
import uuid
import weakref

import numpy as np
import tensorflow as tf

_log = logging.getLogger(__name__)
_rpc = tf.distribute.experimental.rpc

# gRPC's default limit on a received message, which tf rpc does not let us
# change (both the server's requests and the client's responses are bound).
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
# Room left in each message for the TensorProto and gRPC framing around the
# payload (method name, client id, per-field dtype and shape: < 1 KiB).
_MESSAGE_HEADROOM_BYTES = 64 * 1024
_MESSAGE_BUDGET_BYTES = MAX_MESSAGE_BYTES - _MESSAGE_HEADROOM_BYTES
# float32 values per parameter chunk: 4,128,768 bytes of payload per response.
_PARAMETER_CHUNK_SIZE = _MESSAGE_BUDGET_BYTES // 4

# How often a fetch is retried when the learner publishes between two chunk
# reads, before giving up.
_MAX_TORN_READS = 20

# tf.errors codes as they come back from `StatusOrResult.get_error()`.
_OK = 0
_CANCELLED = tf.errors.CANCELLED
_INVALID_ARGUMENT = tf.errors.INVALID_ARGUMENT
_DEADLINE_EXCEEDED = tf.errors.DEADLINE_EXCEEDED
_UNAVAILABLE = tf.errors.UNAVAILABLE
# Codes after which the learner may simply be gone (down, restarting, network
# trouble): reconnect and retry.
_RETRYABLE = (_DEADLINE_EXCEEDED, _UNAVAILABLE)

_FIX_HINT = 'is the learner running? check --learner_address'

# RPC method names registered by LearnerServer.
_ENQUEUE = 'enqueue'
_PROGRESS = 'progress'
_INFO = 'info'
_PARAMETERS_VERSION = 'parameters_version'
_GET_PARAMETERS = 'get_parameters'

# Output specs of the methods, needed by `Client.call` to unpack responses.
_ENQUEUE_OUTPUT = tf.TensorSpec([], tf.int32)
_PROGRESS_OUTPUT = (tf.TensorSpec([], tf.int64), tf.TensorSpec([], tf.int64),
                    tf.TensorSpec([], tf.bool))
_INFO_OUTPUT = (tf.TensorSpec([], tf.int64), tf.TensorSpec([], tf.string),
                tf.TensorSpec([None], tf.int32), tf.TensorSpec([None], tf.int64),
                tf.TensorSpec([], tf.int64), tf.TensorSpec([], tf.int32))
_VERSION_OUTPUT = tf.TensorSpec([], tf.int64)
_CHUNK_OUTPUT = (tf.TensorSpec([], tf.int64), tf.TensorSpec([None], tf.float32))

# Returned by `ActorClient.fetch_parameters`.
#   version: int, the version passed to `LearnerServer.publish`.
#   values: list of float32 numpy arrays, one per learner variable, in the
#     order and with the shapes of `LearnerServer`'s `parameters`.
Parameters = collections.namedtuple('Parameters', 'version values')

# What the learner tells a client when it connects (`info` method).
#   token: int, random per LearnerServer; changes when the learner restarts.
#   unroll_description: str, `describe_specs(unroll_specs)` of the learner.
#   parameter_shapes: list of tuples, shapes of the learner's variables.
#   num_chunks: int, chunks `get_parameters` serves.
#   queue_capacity: int, capacity of the unroll queue, in unrolls.
LearnerInfo = collections.namedtuple(
    'LearnerInfo',
    'token unroll_description parameter_shapes num_chunks queue_capacity')

# Learner-side record of one client's messages (`progress` method).
#   received: int, highest sequence number validated and handed to the queue
#     (possibly still waiting for room); -1 if none.
#   completed: int, highest sequence number that is in the queue; -1 if none.
#   closed: bool, whether the queue is closed (learner shutting down).
EnqueueProgress = collections.namedtuple(
    'EnqueueProgress', 'received completed closed')


class TransportError(Exception):
  """Base class of the errors raised by this module."""


class UnrollRejectedError(TransportError, ValueError):
  """The learner (or the client's own check) rejected unrolls.

  Wrong structure, dtype or shape. The learner keeps running; the rejected
  unrolls are not enqueued.
  """


class LearnerUnavailableError(TransportError, ConnectionError):
  """The learner could not be reached within the timeout."""


class LearnerClosedError(TransportError, ConnectionError):
  """The learner closed its queue: it is shutting down."""


def free_port(host='localhost'):
  """Returns a TCP port that is free on `host` right now.

  tf rpc's server can bind port 0 (the kernel picks a port), but it has no way
  to report which port it got. So `LearnerServer` picks a port with this
  function when asked for port 0 and checks, once started, that it really
  serves that port (another process could take it in between).

  Args:
    host: Host name or address to bind.

  Returns:
    An int port number.
  """
  family = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM)[0][0]
  with socket.socket(family, socket.SOCK_STREAM) as s:
    s.bind((host, 0))
    return s.getsockname()[1]


def split_address(address):
  """Splits 'host:port' (host may be '[::]' or '[::1]') into (host, port)."""
  host, sep, port = address.rpartition(':')
  if not sep or not port.isdigit():
    raise ValueError(f'Address {address!r} is not of the form host:port.')
  return host, int(port)


def _check_port_is_free(host, port):
  """Raises OSError if something already listens on host:port.

  Needed because gRPC binds with SO_REUSEPORT: a second tf rpc server on the
  port of a running one starts without any error and the kernel splits
  connections between the two; and a server whose bind fails only logs
  "Failed to add port to server". A plain bind (SO_REUSEADDR, so that old
  TIME_WAIT connections do not count) fails on a port that anyone listens on.
  """
  bind_host = host.strip('[]')
  try:
    infos = socket.getaddrinfo(bind_host, port, type=socket.SOCK_STREAM)
  except socket.gaierror as e:
    raise OSError(f'Cannot resolve learner host {host!r}: {e}') from e
  for family, socktype, proto, _, sockaddr in infos:
    with socket.socket(family, socktype, proto) as s:
      s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
      try:
        s.bind(sockaddr)
      except OSError as e:
        if e.errno == errno.EADDRINUSE:
          raise OSError(
              errno.EADDRINUSE,
              f'{host}:{port} is already in use (another learner still '
              f'running?); pick another port or use port 0') from e
        # EADDRNOTAVAIL and co. (e.g. no IPv6 on this machine): gRPC skips
        # such addresses as well.


def _leaf_paths(structure):
  """Names of the leaves of `structure`, in `tf.nest.flatten` order.

  Args:
    structure: A nest (dicts, namedtuples, lists, tuples).

  Returns:
    A list of strings such as 'frames', 'agent_outputs/baseline' or '[0]'.
  """

  def paths(x, prefix):
    join = lambda name: f'{prefix}/{name}' if prefix else str(name)
    if isinstance(x, collections.abc.Mapping):
      return type(x)((k, paths(v, join(k))) for k, v in x.items())
    if isinstance(x, tuple) and hasattr(x, '_fields'):
      return type(x)(*[paths(getattr(x, f), join(f)) for f in x._fields])
    if isinstance(x, (list, tuple)):
      return type(x)(paths(v, join(f'[{i}]')) for i, v in enumerate(x))
    return prefix or '<unroll>'

  try:
    # Rebuilding the nest and letting tf.nest flatten it guarantees tf.nest's
    # leaf order (e.g. sorted dict keys).
    names = tf.nest.flatten(paths(structure, ''))
  except Exception:  # pylint: disable=broad-except
    names = []
  if len(names) != len(tf.nest.flatten(structure)):
    names = [f'[{i}]' for i in range(len(tf.nest.flatten(structure)))]
  return names


def describe_specs(unroll_specs):
  """One-line description of an unroll structure, used to compare ends.

  Args:
    unroll_specs: A nest of `tf.TensorSpec` (one unroll, no batch dimension).

  Returns:
    A string such as 'frames: uint8[21,84,84,4]; rewards: float32[21]'.
  """
  specs = tf.nest.flatten(unroll_specs)
  return '; '.join(
      f'{name}: {spec.dtype.name}[{",".join(str(d) for d in spec.shape)}]'
      for name, spec in zip(_leaf_paths(unroll_specs), specs))


def _checked_specs(unroll_specs):
  """Flattens and validates `unroll_specs`; returns a list of TensorSpecs."""
  flat = tf.nest.flatten(unroll_specs)
  if not flat:
    raise ValueError('unroll_specs has no TensorSpec.')
  for name, spec in zip(_leaf_paths(unroll_specs), flat):
    if not isinstance(spec, tf.TensorSpec):
      raise TypeError(f'unroll_specs field {name!r} is a {type(spec)}, '
                      'expected a tf.TensorSpec.')
    if not spec.shape.is_fully_defined():
      raise ValueError(f'unroll_specs field {name!r} has shape {spec.shape}; '
                       'the queue needs fully defined shapes.')
    if not (spec.dtype.is_numpy_compatible and spec.dtype != tf.string):
      raise ValueError(f'unroll_specs field {name!r} has dtype '
                       f'{spec.dtype.name}; only numeric and bool fields can '
                       'be sent.')
  return flat


def _clean_error(message):
  """Strips TF's and gRPC's decorations from an error message from the server.

  '{{function_node __inference_enqueue_39}} assertion failed: [Rejected ...]
  \\n\\t [[{{node Assert}}]]\\nAdditional GRPC error information ...' becomes
  'Rejected ...'.
  """
  if isinstance(message, bytes):
    message = message.decode('utf-8', 'replace')
  message = re.sub(r'\{\{function_node [^}]*\}\}\s*', '', message)
  message = message.split('\nAdditional GRPC error information')[0]
  message = message.split('\n\t [[')[0].strip()
  match = re.fullmatch(r'assertion failed: \[(.*)\]', message, flags=re.S)
  if match:
    # Assert prints its string data C-escaped.
    message = match.group(1).replace("\\'", "'").replace('\\"', '"')
  return message


# LearnerServers not closed yet, closed at exit: otherwise a process that ends
# while actors wait on a full queue hangs in the gRPC server's shutdown, which
# waits for the blocked handlers (measured).
_open_servers = weakref.WeakSet()


@atexit.register
def _close_open_servers():
  for server in list(_open_servers):
    server.close()


class UnrollQueue(object):
  """The learner's bounded FIFO queue of unrolls and its tf.data view.

  Actors in this process enqueue into it directly (`enqueue`); actors in
  other processes reach it through `LearnerServer`, whose RPC handlers
  enqueue into the same `tf.queue.FIFOQueue`. A full queue blocks the
  enqueuer: backpressure, not data loss.

  Args:
    specs: nest of `tf.TensorSpec`, ONE unroll without batch dimension.
    capacity: unrolls held before enqueuers block.
  """

  def __init__(self, specs, capacity):
    self.specs = specs
    self.capacity = int(capacity)
    flat_specs = _checked_specs(specs)
    self._field_names = _leaf_paths(specs)
    self.queue = tf.queue.FIFOQueue(
        self.capacity, dtypes=[s.dtype for s in flat_specs],
        shapes=[s.shape for s in flat_specs], name='unroll_queue')

  def enqueue(self, unrolls):
    """Adds k unrolls, a nest like `specs` with a leading [k] dimension.

    Blocks while the queue is full.

    Raises:
      UnrollRejectedError: the unrolls do not match the specs (nothing is
        added).
    """
    try:
      tf.nest.assert_same_structure(self.specs, unrolls, check_types=False)
    except (ValueError, TypeError) as e:
      raise UnrollRejectedError(
          f'Unroll structure differs from the learner\'s ({e}): is the '
          'actor running the same level, torso and unroll length?') from None
    checked = []
    for name, spec, value in zip(self._field_names, tf.nest.flatten(self.specs),
                                 tf.nest.flatten(unrolls)):
      value = tf.convert_to_tensor(value)
      if value.dtype != spec.dtype or value.shape[1:] != spec.shape:
        raise UnrollRejectedError(
            f'unroll field {name!r} is {value.dtype.name}'
            f'{value.shape.as_list()}, the learner expects [k] + '
            f'{spec.dtype.name}{spec.shape.as_list()}: is the actor running '
            'the same level, torso and unroll length?')
      checked.append(value)
    self.queue.enqueue_many(checked)

  def queue_size(self):
    """Returns the number of unrolls in the queue (an int)."""
    return int(self.queue.size().numpy())

  def close(self):
    """Ends `dataset()` iterators and releases blocked enqueuers."""
    self.queue.close(cancel_pending_enqueues=True)

  def dataset(self, batch_size, prefetch=1):
    """A dataset of batches of unrolls dequeued from the queue, in FIFO order.

    Args:
      batch_size: int, unrolls per batch (B).
      prefetch: int, batches dequeued ahead of the consumer.

    Returns:
      A `tf.data.Dataset` whose elements are nests shaped like `unroll_specs`
      with tensors [B, ...] (batch-major). It ends after `close()`, once fewer
      than `batch_size` unrolls are left.

    Stop iterating with `close()`, `break` or by deleting the iterator. Do
    not append transformations that stop by themselves (`take`, `zip` with a
    shorter dataset) after a prefetch: they drop the prefetch iterator while
    its dequeue waits on an empty queue, and that dequeue is not cancelled
    (measured: `dataset(...).take(1)` hangs once the queue is empty). Use
    `prefetch=0` and prefetch after such transformations instead.
    """
    queue, specs = self.queue, self.specs

    def more(_):
      return tf.logical_or(tf.logical_not(queue.is_closed()),
                           queue.size() >= batch_size)

    def dequeue(_):
      flat = queue.dequeue_many(batch_size)
      if not isinstance(flat, (list, tuple)):  # a one-field queue
        flat = [flat]
      return tf.nest.pack_sequence_as(specs, list(flat))

    # `more` stops the dataset once the queue is closed. A dequeue that was
    # already waiting when the queue closed fails (OutOfRange, which tf.data
    # reports as InvalidArgument); `ignore_errors` drops that element and
    # `more` then ends the dataset. Dequeues cannot fail otherwise: unrolls
    # are validated on enqueue. A sequential map keeps FIFO order.
    # Autotuning is off: a fixed prefetch leaves it nothing to tune, and its
    # background thread made deleting the iterator at shutdown wait for the
    # thread's next wake-up (seen: ~45 s after Ctrl-C, with the tf.data
    # iterator destructor blocked on Model::OptimizeLoop).
    options = tf.data.Options()
    options.autotune.enabled = False
    return (tf.data.Dataset.from_tensors(0).repeat()
            .take_while(more)
            .map(dequeue)
            .ignore_errors(log_warning=False)
            .prefetch(prefetch)
            .with_options(options))



class LearnerServer(object):
  """Hosts the unroll queue and the parameter snapshots of a learner.

  Registered RPC methods (all run as tf.functions inside this process):
    enqueue(client_id, seq, field_0, ..., field_{F-1}) -> queue size: F
      tf.string scalars, `tf.io.serialize_tensor` of each flattened unroll
      field batched to [k, ...]. Validated, then enqueued; blocks while the
      queue is full.
    progress(client_id) -> EnqueueProgress fields.
    info() -> LearnerInfo fields (parameter shapes as ranks + dims).
    parameters_version() -> int64 version of the latest snapshot.
    get_parameters(chunk_index) -> (int64 version, float32 [<= chunk size]).

  Thread-safe: `dataset`, `publish`, `queue_size` and `close` may be called
  from any thread while the RPC server serves actors.
  """

  def __init__(self, address, unroll_specs, queue_capacity, parameters,
               initial_version=0, start_timeout_s=30.0):
    """Creates the queue, registers the methods, starts serving.

    Args:
      address: 'host:port' to listen on, e.g. 'localhost:0' (a free port is
        picked, see `free_port`; `self.address` has the real one), '[::]:8001'
        (all interfaces). Actors on other machines need a host other than
        localhost.
      unroll_specs: Nest of `tf.TensorSpec`, one unroll without batch dim.
      queue_capacity: int, capacity of the queue in unrolls. Enqueues beyond
        it block (backpressure to the actors).
      parameters: list of float `tf.Variable`s served to actors (cast to
        float32 in the snapshots).
      initial_version: int, version of the snapshot published here, before
        serving (e.g. the step restored from a checkpoint).
      start_timeout_s: float, how long the post-start self check may take.

    Raises:
      OSError: if the port is taken.
      RuntimeError: if the server does not answer on its address.
    """
    self._unroll_specs = unroll_specs
    self._flat_specs = _checked_specs(unroll_specs)
    self._field_names = _leaf_paths(unroll_specs)
    self._description = describe_specs(unroll_specs)
    self._capacity = int(queue_capacity)
    if self._capacity < 1:
      raise ValueError(f'queue_capacity must be >= 1, got {queue_capacity}.')
    self._parameters = list(parameters)
    for i, v in enumerate(self._parameters):
      if not v.dtype.is_floating or not v.shape.is_fully_defined():
        raise ValueError(
            f'parameters[{i}] ({v.name}) has dtype {v.dtype.name} and shape '
            f'{v.shape}: only float variables of fixed shape are served.')
    self._lock = threading.Lock()
    self._closed = False

    # The queue is one Python object captured by the registered functions and
    # by `dataset()`: FIFOQueue(shared_name=...) is ignored in eager mode, so
    # it is shared by capture, not by name.
    self.unroll_queue = UnrollQueue(unroll_specs, self._capacity)
    self._queue = self.unroll_queue.queue
    # Per-client sequence numbers for exactly-once enqueues (module doc).
    self._received = tf.lookup.experimental.MutableHashTable(
        tf.string, tf.int64, default_value=-1)
    self._completed = tf.lookup.experimental.MutableHashTable(
        tf.string, tf.int64, default_value=-1)
    # Makes "is this seq new? then it is received" atomic, for a resend that
    # arrives while the original is still being validated.
    self._claim_lock = tf.CriticalSection(name='enqueue_claim_lock')

    # Flat float32 snapshot of the parameters and its version, guarded by a
    # critical section so that a chunk and its version come from the same
    # snapshot.
    self._parameter_shapes = [tuple(v.shape.as_list())
                              for v in self._parameters]
    num_values = int(sum(np.prod(s, dtype=np.int64)
                         for s in self._parameter_shapes))
    self._num_chunks = -(-num_values // _PARAMETER_CHUNK_SIZE)
    self._snapshot = tf.Variable(tf.zeros([num_values], tf.float32),
                                 trainable=False, name='parameter_snapshot')
    self._version = tf.Variable(tf.constant(-1, tf.int64), trainable=False,
                                name='parameter_version')
    self._snapshot_lock = tf.CriticalSection(name='parameter_snapshot_lock')
    self._token = int(np.random.default_rng().integers(1, 2**62))

    self._publish_fn = self._make_publish_fn()
    self.publish(initial_version)

    host, port = split_address(address)
    # Port 0: pick a port ourselves (tf rpc cannot report the port it got);
    # retry in the unlikely case another process grabs it before gRPC binds.
    attempts = 3 if port == 0 else 1
    for attempt in range(attempts):
      chosen = free_port(host.strip('[]')) if port == 0 else port
      self.address = f'{host}:{chosen}'
      try:
        self._start(start_timeout_s)
        break
      except (OSError, RuntimeError):
        self._server = None
        if attempt == attempts - 1:
          raise
    _open_servers.add(self)
    _log.info('LearnerServer serving %s on %s (capacity %d, %d parameter '
              'chunks).', self._description, self.address, self._capacity,
              self._num_chunks)

  def _make_publish_fn(self):
    variables = self._parameters
    snapshot, version, lock = self._snapshot, self._version, self._snapshot_lock

    @tf.function(input_signature=[tf.TensorSpec([], tf.int64)])
    def publish(new_version):
      def write():
        if variables:
          flat = tf.concat([tf.reshape(tf.cast(v, tf.float32), [-1])
                            for v in variables], axis=0)
          assign = snapshot.assign(flat)
        else:
          assign = tf.no_op()
        with tf.control_dependencies([assign]):
          return version.assign(new_version)
      return lock.execute(write)

    return publish

  def _make_rpc_methods(self):
    """Builds the tf.functions served over RPC; returns {name: function}."""
    flat_specs = self._flat_specs
    names = self._field_names
    queue, received, completed = self._queue, self._received, self._completed
    claim_lock = self._claim_lock
    snapshot, version, lock = self._snapshot, self._version, self._snapshot_lock
    num_fields = len(flat_specs)
    # DataType enum -> name, to say what dtype a rejected field had.
    dtype_names = tf.constant([_dtype_name(i) for i in range(32)])

    @tf.function(input_signature=[tf.TensorSpec([], tf.string),
                                  tf.TensorSpec([], tf.int64)] +
                 [tf.TensorSpec([], tf.string)] * num_fields)
    def enqueue(client_id, seq, *encoded):
      # 1. Dtypes, read from the TensorProtos' dtype field before decoding
      #    (parse_tensor would fail on a mismatch without naming the field).
      #    One field at a time: stacking the fields would copy the payload.
      checks = []
      for name, spec, e in zip(names, flat_specs, encoded):
        proto = tf.io.decode_proto(e, 'tensorflow.TensorProto', ['dtype'],
                                   [tf.int32])
        # [1], or [0] for a proto without dtype field: pad with DT_INVALID.
        dtype_sent = tf.concat([proto.values[0], [0]], 0)[0]
        sent = tf.gather(dtype_names, tf.clip_by_value(dtype_sent, 0, 31))
        checks.append(tf.debugging.Assert(
            tf.equal(dtype_sent, spec.dtype.as_datatype_enum),
            [tf.strings.join([
                f'unroll field {name!r} has dtype ', sent,
                f', the learner expects {spec.dtype.name}.'])]))
      # 2. Shapes: every field must be [k, *spec.shape] with the same k.
      tensors = []
      with tf.control_dependencies(checks):
        for spec, e in zip(flat_specs, encoded):
          tensors.append(tf.io.parse_tensor(e, out_type=spec.dtype))
      k = tf.shape(tensors[0], out_type=tf.int64)[0:1]
      for name, spec, t in zip(names, flat_specs, tensors):
        sent = tf.strings.reduce_join(
            tf.strings.as_string(tf.shape(t, out_type=tf.int64)),
            separator=',')
        expected = tf.strings.reduce_join(
            tf.strings.as_string(tf.concat(
                [k, tf.constant(spec.shape.as_list(), tf.int64)], 0)),
            separator=',')
        checks.append(tf.debugging.Assert(
            tf.equal(sent, expected),
            [tf.strings.join([
                f'unroll field {name!r} has shape [', sent,
                '], the learner expects [', expected, '] (k unrolls of ',
                f'{spec.shape.as_list()}, same k for all fields).'])]))

      # 3. Enqueue once per (client, seq): a resend of a message the learner
      #    already has (client timed out, connection broke) is dropped.
      def claim():
        def mark_received():
          with tf.control_dependencies([received.insert(client_id, seq)]):
            return tf.constant(True)
        return tf.cond(seq > received.lookup(client_id), mark_received,
                       lambda: tf.constant(False))

      def do_enqueue():
        with tf.control_dependencies([queue.enqueue_many(tensors)]):
          done = completed.insert(client_id, seq)
        with tf.control_dependencies([done]):
          return queue.size()

      with tf.control_dependencies(checks):
        is_new = claim_lock.execute(claim)
      return tf.cond(is_new, do_enqueue, queue.size)

    @tf.function(input_signature=[tf.TensorSpec([], tf.string)])
    def progress(client_id):
      return (received.lookup(client_id), completed.lookup(client_id),
              queue.is_closed())

    ranks = [len(s) for s in self._parameter_shapes]
    dims = [d for s in self._parameter_shapes for d in s]
    info_values = (self._token, self._description, ranks, dims,
                   self._num_chunks, self._capacity)

    @tf.function(input_signature=[])
    def info():
      token, description, ranks_, dims_, num_chunks, capacity = info_values
      return (tf.constant(token, tf.int64), tf.constant(description),
              tf.constant(ranks_, tf.int32, shape=[len(ranks_)]),
              tf.constant(dims_, tf.int64, shape=[len(dims_)]),
              tf.constant(num_chunks, tf.int64),
              tf.constant(capacity, tf.int32))

    @tf.function(input_signature=[])
    def parameters_version():
      return version.read_value()

    num_chunks = self._num_chunks

    @tf.function(input_signature=[tf.TensorSpec([], tf.int32)])
    def get_parameters(chunk_index):
      check = tf.debugging.Assert(
          tf.logical_and(chunk_index >= 0, chunk_index < num_chunks),
          [tf.strings.join([
              'get_parameters: chunk index ', tf.strings.as_string(chunk_index),
              f' out of range [0, {num_chunks}).'])])

      def read():
        start = chunk_index * _PARAMETER_CHUNK_SIZE
        # The slice is a copy, so the chunk cannot change after the lock is
        # released.
        return (version.read_value(),
                snapshot[start:start + _PARAMETER_CHUNK_SIZE])

      with tf.control_dependencies([check]):
        return lock.execute(read)

    return {_ENQUEUE: enqueue, _PROGRESS: progress, _INFO: info,
            _PARAMETERS_VERSION: parameters_version,
            _GET_PARAMETERS: get_parameters}

  def _start(self, timeout_s):
    """Starts the gRPC server on self.address and checks that it is ours."""
    host, port = split_address(self.address)
    _check_port_is_free(host, port)
    self._server = _rpc.Server.create('grpc', self.address)
    for name, fn in self._make_rpc_methods().items():
      self._server.register(name, fn)
    self._server.start()
    # tf rpc does not report a failed bind (it logs it), so ask the address
    # for our token.
    connect_host = {'': 'localhost', '[::]': 'localhost',
                    '0.0.0.0': 'localhost'}.get(host, host)
    try:
      client = _rpc.Client.create(
          'grpc', f'{connect_host}:{port}', name=f'self-check-{uuid.uuid4()}',
          timeout_in_ms=int(timeout_s * 1000))
      token = client.call(_INFO, [], _INFO_OUTPUT).get_value()[0]
    except (tf.errors.OpError, ValueError) as e:
      raise RuntimeError(f'The learner RPC server did not come up on '
                         f'{self.address}: {_clean_error(str(e))}') from e
    if int(token) != self._token:
      raise RuntimeError(f'Another server answers on {self.address}.')

  @property
  def unroll_specs(self):
    return self._unroll_specs

  @property
  def queue(self):
    """The `tf.queue.FIFOQueue` of unrolls (flattened fields)."""
    return self._queue

  def publish(self, version):
    """Snapshots the parameters; actors fetch this snapshot from now on.

    Called by the learner after a train step. Copies the variables once (about
    1 ms for 2M floats on one CPU core).

    Args:
      version: int, e.g. the learner step. Actors compare versions for
        equality only; use a new value each time.
    """
    self._publish_fn(tf.constant(version, tf.int64))

  def queue_size(self):
    """Returns the number of unrolls in the queue (an int)."""
    return self.unroll_queue.queue_size()

  def dataset(self, batch_size, prefetch=1):
    """`UnrollQueue.dataset` of the server's queue."""
    return self.unroll_queue.dataset(batch_size, prefetch)

  def close(self):
    """Closes the queue and stops the RPC server.

    Enqueues blocked on a full queue fail (the actors get LearnerClosedError);
    `dataset()` iterators end once fewer than a batch is left. Idempotent.
    """
    with self._lock:
      if self._closed:
        return
      self._closed = True
    # First release the handlers blocked in enqueue: the gRPC server's
    # shutdown (when the server resource is deleted) waits for all running
    # handlers.
    self.unroll_queue.close()
    self._server = None
    _open_servers.discard(self)

  def __del__(self):
    # Same reason as _close_open_servers, for a server dropped without close.
    try:
      self.close()
    except Exception:  # pylint: disable=broad-except
      pass  # Interpreter shutdown: TF may be gone already.

  def __enter__(self):
    return self

  def __exit__(self, *unused_exc_info):
    self.close()


def _dtype_name(enum):
  try:
    return tf.dtypes.as_dtype(enum).name
  except (TypeError, ValueError):
    return f'DataType({enum})'


class ActorClient(object):
  """Sends unrolls to a `LearnerServer` and fetches its parameters.

  Calls are serialised by a lock (one RPC at a time per client); use one client
  per actor thread for parallel sends.

  Reconnection: every call reconnects by itself when the learner is down or
  restarted, retrying for up to `reconnect_timeout_s` before raising
  LearnerUnavailableError. A restarted learner must use the same address and
  unroll structure; the unrolls a dead learner had queued are lost with it.
  """

  def __init__(self, address, unroll_specs, connect_timeout_s=60.0,
               reconnect_timeout_s=300.0, rpc_timeout_s=20.0,
               check_specs=True):
    """Connects to the learner (waiting for it to come up).

    Args:
      address: 'host:port' of the learner (its --learner_address).
      unroll_specs: Nest of `tf.TensorSpec`, one unroll without batch dim; must
        match the learner's.
      connect_timeout_s: float, how long to wait for the learner here.
      reconnect_timeout_s: float, how long later calls keep retrying while the
        learner is unreachable.
      rpc_timeout_s: float, deadline of one RPC. An enqueue that waits longer
        for room in the queue is not an error: the client then waits for the
        learner's receipt instead of resending.
      check_specs: bool, whether to refuse to connect to a learner whose unroll
        structure differs (False only to test the learner's own checks).

    Raises:
      LearnerUnavailableError: if the learner does not answer within
        connect_timeout_s.
      UnrollRejectedError: if check_specs and the unroll structures differ.
    """
    self._address = address
    split_address(address)
    self._unroll_specs = unroll_specs
    self._flat_specs = _checked_specs(unroll_specs)
    self._field_names = _leaf_paths(unroll_specs)
    self._description = describe_specs(unroll_specs)
    self._unroll_bytes = sum(
        s.dtype.size * s.shape.num_elements() for s in self._flat_specs)
    if self._unroll_bytes > _MESSAGE_BUDGET_BYTES:
      raise ValueError(
          f'One unroll is {self._unroll_bytes} bytes but a message to the '
          f'learner is limited to {_MESSAGE_BUDGET_BYTES} bytes (gRPC 4 MiB '
          'limit of tf rpc); use shorter unrolls.')
    self._reconnect_timeout_s = float(reconnect_timeout_s)
    self._rpc_timeout_s = float(rpc_timeout_s)
    self._check_specs = check_specs
    self._lock = threading.Lock()
    # Identifies this client's messages across reconnections.
    self._client_id = uuid.uuid4().hex
    self._seq = 0
    self._generation = 0
    self._client = None
    self._info = None
    # Token of the learner the last parameters came from: versions are only
    # comparable within one learner's lifetime.
    self._parameters_token = None
    with self._lock:
      self._connect(connect_timeout_s)

  @property
  def address(self):
    return self._address

  @property
  def learner_info(self):
    """`LearnerInfo` of the learner this client is connected to."""
    return self._info

  # -- Connection --------------------------------------------------------------

  def _connect(self, timeout_s):
    """(Re)creates the channel and reads the learner's `info`.

    A fresh channel is used on each reconnection: the old one may be in gRPC's
    exponential reconnect backoff (measured: 4 s late after an 8 s outage).

    Raises:
      LearnerUnavailableError: after timeout_s without an answer.
      UnrollRejectedError: on an unroll structure mismatch.
    """
    deadline = time.monotonic() + timeout_s
    # Drop the old channel first: its resource is deleted by name when the
    # Python object dies, so the new one must have a different name.
    self._client = None
    self._generation += 1
    # Failed attempts reuse one name: tf rpc deletes a client resource of the
    # same name before creating one, so they leak no channel threads.
    name = f'actor-{self._client_id}-{self._generation}'
    last_error = 'no attempt made'
    delay = 0.05
    client = None
    while True:
      # Drop the previous failed attempt's client before creating one under
      # the same name: its deleter would otherwise delete the new resource.
      client = None
      remaining = deadline - time.monotonic()
      if remaining <= 0:
        raise LearnerUnavailableError(
            f'Learner at {self._address} unreachable for {timeout_s:.1f} s '
            f'({_FIX_HINT}). Last error: {last_error}')
      # Short attempts: a waiting call on a channel in backoff would notice
      # a learner that came up only at the next backoff step.
      attempt_s = min(remaining, 2.0)
      started = time.monotonic()
      try:
        client = _rpc.Client.create('grpc', self._address, name=name,
                                    timeout_in_ms=max(1, int(attempt_s * 1e3)))
        code, message, value = self._call_on(client, _INFO, [], _INFO_OUTPUT,
                                             attempt_s)
        if code == _OK:
          break
        if code not in _RETRYABLE:
          raise TransportError(f'Learner at {self._address} answered info() '
                               f'with an error: {message}')
        last_error = message
      except (tf.errors.DeadlineExceededError, tf.errors.UnavailableError,
              tf.errors.InvalidArgumentError) as e:
        # InvalidArgument: the List RPC succeeded against something that is
        # not a learner, or the call failed in a way tf reports like that.
        last_error = _clean_error(str(e))
      # Attempts that fail fast (e.g. bad host name) should not spin.
      if time.monotonic() - started < attempt_s:
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, 1.0)

    token, description, ranks, dims, num_chunks, capacity = value
    description = description.numpy().decode()
    if self._check_specs and description != self._description:
      raise UnrollRejectedError(
          f'Actor and learner at {self._address} disagree on the unroll '
          f'structure.\n  learner: {description}\n  actor:   '
          f'{self._description}')
    shapes, dims, i = [], dims.numpy().tolist(), 0
    for rank in ranks.numpy().tolist():
      shapes.append(tuple(dims[i:i + rank]))
      i += rank
    info = LearnerInfo(int(token), description, shapes, int(num_chunks),
                       int(capacity))
    if self._info is not None and info.token != self._info.token:
      _log.warning('Reconnected to a new learner at %s.', self._address)
    self._info = info
    self._client = client

  @staticmethod
  def _call_on(client, method, args, output_specs, timeout_s):
    """One RPC; returns (code, message, value). Never raises for RPC errors."""
    result = client.call(method, args, output_specs,
                         timeout_in_ms=max(1, int(timeout_s * 1e3)))
    code, message = result.get_error()
    code = int(code.numpy())
    if code != _OK:
      return code, _clean_error(message.numpy()), None
    return _OK, '', result.get_value()

  def _request(self, method, args, output_specs):
    """An idempotent RPC, retried across reconnections. Returns its value."""
    while True:
      if self._client is None:
        self._connect(self._reconnect_timeout_s)
      code, message, value = self._call_on(self._client, method, args,
                                           output_specs, self._rpc_timeout_s)
      if code == _OK:
        return value
      if code in _RETRYABLE:
        _log.info('%s to %s failed (%s); reconnecting.', method,
                  self._address, message)
        self._client = None
        continue
      raise TransportError(f'{method} on learner {self._address} failed: '
                           f'{message}')

  # -- Unrolls -----------------------------------------------------------------

  def _check_unrolls(self, unrolls):
    """Checks unrolls against the specs; returns (flat arrays, k)."""
    try:
      tf.nest.assert_same_structure(self._unroll_specs, unrolls,
                                    check_types=False)
    except (ValueError, TypeError) as e:
      raise UnrollRejectedError(
          f'Unrolls do not have the structure of unroll_specs: {e}') from e
    flat = [np.asarray(x) for x in tf.nest.flatten(unrolls)]
    k = flat[0].shape[0] if flat[0].ndim else None
    for name, spec, x in zip(self._field_names, self._flat_specs, flat):
      if x.dtype != spec.dtype.as_numpy_dtype:
        raise UnrollRejectedError(
            f'Field {name!r} has dtype {x.dtype}, expected '
            f'{spec.dtype.name} (cast it before sending).')
      if x.ndim == 0 or tuple(x.shape[1:]) != tuple(spec.shape.as_list()):
        raise UnrollRejectedError(
            f'Field {name!r} has shape {list(x.shape)}, expected '
            f'[k, {", ".join(str(d) for d in spec.shape)}] (leading batch '
            'dimension).')
      if x.shape[0] != k:
        raise UnrollRejectedError(
            f'Field {name!r} has {x.shape[0]} unrolls, field '
            f'{self._field_names[0]!r} has {k}.')
    return [np.ascontiguousarray(x) for x in flat], k

  def unrolls_per_message(self):
    """How many unrolls fit in one enqueue message (< 4 MiB)."""
    return max(1, _MESSAGE_BUDGET_BYTES // self._unroll_bytes)

  def send(self, unrolls, timeout_s=None):
    """Sends unrolls to the learner's queue.

    Blocks while the queue is full (backpressure). Unrolls are enqueued in
    order, exactly once, in messages of `unrolls_per_message()` unrolls; the
    unrolls of one message enter the queue together, different messages (and
    other actors') may interleave.

    Args:
      unrolls: Nest shaped like unroll_specs of numpy arrays (or anything
        np.asarray takes) with a leading batch dim: [k, ...].
      timeout_s: float or None; how long to wait for room in the queue. None
        waits as long as the learner is alive.

    Raises:
      UnrollRejectedError: wrong structure, dtype or shape (checked here, and
        by the learner against its own specs); nothing of that message is
        enqueued.
      LearnerUnavailableError: the learner stayed unreachable for
        reconnect_timeout_s.
      LearnerClosedError: the learner closed its queue.
      TimeoutError: no room in the queue (or no learner) for timeout_s. The
        messages before the current one are enqueued; the current one is
        enqueued later if the learner already holds it (it does not cancel a
        waiting enqueue), the rest are not sent.
    """
    flat, k = self._check_unrolls(unrolls)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    per_message = self.unrolls_per_message()
    with self._lock:
      for start in range(0, k, per_message):
        # serialize_tensor: one TensorProto with raw bytes per field (see the
        # module doc for why not plain uint8 tensors).
        encoded = [tf.io.serialize_tensor(x[start:start + per_message])
                   for x in flat]
        self._seq += 1
        self._enqueue(encoded, self._seq, deadline)

  def _enqueue(self, encoded, seq, deadline):
    """Delivers one message (list of F encoded fields) exactly once."""
    client_id = tf.constant(self._client_id)
    seq_t = tf.constant(seq, tf.int64)
    resend = True
    poll_s = 0.005
    while True:
      remaining = None if deadline is None else deadline - time.monotonic()
      if remaining is not None and remaining <= 0:
        raise TimeoutError(
            f'No room in the learner queue at {self._address} in time; a '
            'message the learner already holds is enqueued when there is '
            'room.')
      if resend:
        if self._client is None:
          self._connect(self._reconnect_timeout_s)
        call_s = self._rpc_timeout_s
        if remaining is not None:
          call_s = max(0.001, min(call_s, remaining))
        code, message, value = self._call_on(
            self._client, _ENQUEUE, [client_id, seq_t] + encoded,
            _ENQUEUE_OUTPUT, call_s)
        if code == _OK:
          return
        if code == _INVALID_ARGUMENT:
          raise UnrollRejectedError(
              f'Learner at {self._address} rejected the unrolls: {message}')
        if code == _CANCELLED:
          raise LearnerClosedError(
              f'Learner at {self._address} closed its queue: {message}')
        if code not in _RETRYABLE:
          raise TransportError(
              f'enqueue on learner {self._address} failed: {message}')
      # Timed out or connection broke: ask whether the learner has it. This
      # also reconnects if the learner is gone.
      progress = EnqueueProgress(*(
          x.numpy() for x in self._request(_PROGRESS, [client_id],
                                           _PROGRESS_OUTPUT)))
      if progress.completed >= seq:
        return
      if progress.closed:
        raise LearnerClosedError(f'Learner at {self._address} closed its '
                                 'queue.')
      # received >= seq: it waits for room in the learner; do not resend.
      # Otherwise the learner never got it (or restarted): resend.
      resend = progress.received < seq
      if not resend:
        time.sleep(poll_s if remaining is None else min(poll_s, remaining))
        poll_s = min(poll_s * 2, 0.2)

  # -- Parameters --------------------------------------------------------------

  def parameters_version(self):
    """Returns the version of the learner's latest parameter snapshot."""
    with self._lock:
      return int(self._request(_PARAMETERS_VERSION, [], _VERSION_OUTPUT))

  def fetch_parameters(self, known_version=None):
    """Fetches the learner's latest parameters unless already known.

    Args:
      known_version: int or None, the version the caller has (from this
        client's last fetch; after a learner restart, the next fetch always
        transfers, as the new learner may reuse version numbers).

    Returns:
      None if the learner's version equals known_version, else
      Parameters(version, values) with float32 numpy arrays shaped like the
      learner's variables (views of one flat buffer).

    Raises:
      LearnerUnavailableError: the learner stayed unreachable for
        reconnect_timeout_s.
      TransportError: the learner published new parameters during every one
        of _MAX_TORN_READS attempts.
    """
    with self._lock:
      for _ in range(_MAX_TORN_READS):
        version = int(self._request(_PARAMETERS_VERSION, [], _VERSION_OUTPUT))
        info = self._info
        if (version == known_version and
            info.token == self._parameters_token):
          return None
        chunks = []
        for i in range(info.num_chunks):
          chunk_version, chunk = self._request(
              _GET_PARAMETERS, [tf.constant(i, tf.int32)], _CHUNK_OUTPUT)
          if int(chunk_version) != version or self._info is not info:
            break  # Torn read (new snapshot, or a restarted learner).
          chunks.append(chunk.numpy())
        else:
          self._parameters_token = info.token
          return Parameters(version, self._unflatten(chunks, info))
      raise TransportError(
          f'Parameters of {self._address} changed during each of '
          f'{_MAX_TORN_READS} fetches; publish less often.')

  @staticmethod
  def _unflatten(chunks, info):
    flat = np.concatenate(chunks) if chunks else np.zeros([0], np.float32)
    values, offset = [], 0
    for shape in info.parameter_shapes:
      size = int(np.prod(shape, dtype=np.int64))
      values.append(flat[offset:offset + size].reshape(shape))
      offset += size
    if offset != flat.size:
      raise TransportError(f'Got {flat.size} parameter values, the learner '
                           f'announced {offset}.')
    return values

  def close(self):
    """Drops the channel. The client reconnects if used again."""
    with self._lock:
      self._client = None

  def __enter__(self):
    return self

  def __exit__(self, *unused_exc_info):
    self.close()
