"""The learner's side: an RPC server around the unroll queue and parameters.

Learner:

  server = transport.LearnerServer('[::]:8001', unroll_specs,
                                   queue_capacity=64,
                                   parameters=agent.trainable_variables)
  for batch in server.dataset(batch_size=32):  # nest of [B, ...] tensors
    train_step(batch)
    server.publish(step)                          # snapshot of the variables

Backpressure. The `enqueue` method blocks inside the server while the queue is
full. tf rpc's server is a synchronous gRPC server, which serves other calls
(parameter fetches, other actors) on other threads while one handler is
blocked, and the queue's enqueue is an asynchronous kernel that holds no TF
thread while it waits.

Exactly-once delivery. The tf rpc server ignores client deadlines and
cancellations: an `enqueue` that the client gave up on still lands in the
queue once there is room. So each client numbers its messages and the learner
records, per client, the last sequence number received (validated, waiting for
room) and completed (in the queue). After a timeout or a broken connection the
client asks (`progress`) before resending, and the learner drops a message
whose number it has already received.

Versioned parameters. `publish(version)` copies all variables into one flat
float32 buffer under a `tf.CriticalSection`, so each `get_parameters(i)`
returns a chunk and the version of the snapshot it was cut from.
"""

import atexit
import logging
import threading
import time
import uuid
import weakref

import numpy as np
import tensorflow as tf

from scalable_agent.transport import addresses
from scalable_agent.transport import protocol
from scalable_agent.transport import queue as queue_lib
from scalable_agent.transport import validation

_log = logging.getLogger(__name__)
_rpc = tf.distribute.experimental.rpc

# How long the check that a started server answers on its address may take.
_START_TIMEOUT_S = 30.0

# LearnerServers not closed yet, closed at exit: otherwise a process that ends
# while actors wait on a full queue hangs in the gRPC server's shutdown, which
# waits for the blocked handlers (measured). atexit hooks run before Python
# tears down modules, so TF is still whole when these close.
_open_servers = weakref.WeakSet()


@atexit.register
def _close_open_servers():
  for server in list(_open_servers):
    server.close()


class LearnerServer(object):
  """Hosts the unroll queue and the parameter snapshots of a learner.

  Serves the methods of `protocol` (all run as tf.functions inside this
  process). Thread-safe: `dataset`, `publish`, `queue_size` and `close` may be
  called from any thread while the RPC server serves actors.

  Attributes:
    address: 'host:port' actually served ('localhost:0' -> a free port).
    unroll_queue: the `UnrollQueue` the actors fill.
  """

  def __init__(self, address, unroll_specs, queue_capacity, parameters,
               value_ranges=None, run_description=''):
    """Creates the queue, registers the methods, starts serving.

    Serves version 0 (the variables' values now) until the first `publish`.

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
      value_ranges: dict field name -> (low, high), integer fields whose
        values must be in [low, high) (see `UnrollSignature`); float fields
        must be finite. A message that breaks them is refused.
      run_description: what this run trains ('level=pong torso=shallow'):
        an `ActorClient` with another one is refused at connect (two games
        can have identical unroll specs).

    Raises:
      TypeError, ValueError: invalid specs, capacity or parameters.
      OSError: if the port is taken.
      RuntimeError: if the server does not answer on its address.
    """
    self._run_description = run_description
    self._lock = threading.Lock()
    self._closed = True  # Until it serves: nothing for close() to do.
    self._parameters = list(parameters)
    for i, v in enumerate(self._parameters):
      if not v.dtype.is_floating or not v.shape.is_fully_defined():
        raise ValueError(
            f'parameters[{i}] ({v.name}) has dtype {v.dtype.name} and shape '
            f'{v.shape}: only float variables of fixed shape are served.')
    self.unroll_queue = queue_lib.UnrollQueue(unroll_specs, queue_capacity,
                                              value_ranges)

    # Per-client sequence numbers for exactly-once enqueues (module doc).
    self._received = tf.lookup.experimental.MutableHashTable(
        tf.string, tf.int64, default_value=-1)
    self._completed = tf.lookup.experimental.MutableHashTable(
        tf.string, tf.int64, default_value=-1)

    # Flat float32 snapshot of the parameters and its version, guarded by a
    # critical section so that a chunk and its version come from the same
    # snapshot.
    self._parameter_shapes = [tuple(v.shape.as_list())
                              for v in self._parameters]
    num_values = int(sum(np.prod(s, dtype=np.int64)
                         for s in self._parameter_shapes))
    self._num_chunks = -(-num_values // protocol.PARAMETER_CHUNK_SIZE)
    self._snapshot = tf.Variable(tf.zeros([num_values], tf.float32),
                                 trainable=False, name='parameter_snapshot')
    self._version = tf.Variable(tf.constant(-1, tf.int64), trainable=False,
                                name='parameter_version')
    self._snapshot_lock = tf.CriticalSection(name='parameter_snapshot_lock')
    self._token = int(np.random.default_rng().integers(1, 2**62))
    self._publish_fn = self._make_publish_fn()
    self.publish(0)

    self._server = None
    self._serve(address)
    self._closed = False
    _open_servers.add(self)
    _log.info('LearnerServer serving %s on %s (capacity %d, %d parameter '
              'chunks).', self.unroll_queue.signature.description,
              self.address, self.unroll_queue.capacity, self._num_chunks)

  def publish(self, version):
    """Snapshots the parameters; actors fetch this snapshot from now on.

    Called by the learner after a train step. Copies the variables once (about
    1 ms for 2M floats on one CPU core).

    Args:
      version: int, e.g. the learner step. Actors compare versions for
        equality only; use a new value each time.
    """
    self._publish_fn(tf.constant(version, tf.int64))

  def num_clients(self):
    """Actors (client ids) that have sent unrolls to this server so far."""
    return int(self._received.size())

  def queue_size(self):
    """Returns the number of unrolls in the queue (an int)."""
    return self.unroll_queue.queue_size()

  def dataset(self, batch_size, prefetch=1):
    """`UnrollQueue.dataset` of the server's queue."""
    return self.unroll_queue.dataset(batch_size, prefetch)

  def close(self, grace_s=0.):
    """Closes the queue and stops the RPC server.

    Enqueues blocked on a full queue fail (the actors get LearnerClosedError);
    `dataset()` iterators end once fewer than a batch is left. Idempotent.

    Args:
      grace_s: keep answering this long after closing the queue, so that
        actors between two sends hear "closed" on their next one
        (LearnerClosedError: training is over, exit 0) instead of finding
        nobody there and retrying until they give up as "unreachable".
    """
    with self._lock:
      if self._closed:
        return
      self._closed = True
    # First release the handlers blocked in enqueue: the gRPC server's
    # shutdown (when the server resource is deleted) waits for all running
    # handlers.
    self.unroll_queue.close()
    if grace_s > 0:
      time.sleep(grace_s)
    self._server = None
    _open_servers.discard(self)

  def __del__(self):
    # A server dropped without close(), for the reason of _close_open_servers.
    # No need to guard against interpreter shutdown: the atexit hook has
    # closed every open server by then, so this returns at once.
    self.close()

  def __enter__(self):
    return self

  def __exit__(self, *unused_exc_info):
    self.close()

  # -- Starting ----------------------------------------------------------------

  def _serve(self, address):
    """Starts the RPC server on `address`; sets self.address."""
    host, port = addresses.split_address(address)
    # Port 0: pick a port ourselves (tf rpc cannot report the port it got);
    # retry in the unlikely case another process grabs it before gRPC binds.
    attempts = 3 if port == 0 else 1
    for attempt in range(attempts):
      chosen = addresses.free_port(host.strip('[]')) if port == 0 else port
      self.address = f'{host}:{chosen}'
      try:
        self._start(host, chosen)
        return
      except (OSError, RuntimeError):
        self._server = None
        if attempt == attempts - 1:
          raise

  def _start(self, host, port):
    """Starts the gRPC server on host:port and checks that it is ours."""
    addresses.check_port_is_free(host, port)
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
          timeout_in_ms=int(_START_TIMEOUT_S * 1000))
      token = client.call(protocol.INFO, [],
                          protocol.INFO_OUTPUT).get_value()[0]
    except (tf.errors.DeadlineExceededError, tf.errors.UnavailableError,
            tf.errors.UnimplementedError) as e:
      # Nothing answers (the bind failed: tf rpc only logs that), or a gRPC
      # server that is not tf rpc does.
      raise RuntimeError(f'The learner RPC server did not come up on '
                         f'{self.address}: {protocol.clean_error(str(e))}'
                         ) from e
    if int(token) != self._token:
      raise RuntimeError(f'Another server answers on {self.address}.')

  # -- The served tf.functions -------------------------------------------------

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
    received, completed = self._received, self._completed
    fifo = self.unroll_queue.fifo
    snapshot, version, lock = self._snapshot, self._version, self._snapshot_lock
    signature = self.unroll_queue.signature
    # Makes "is this seq new? then it is received" atomic, for a resend that
    # arrives while the original is still being validated.
    claim_lock = tf.CriticalSection(name='enqueue_claim_lock')

    @tf.function(input_signature=[tf.TensorSpec([], tf.string),
                                  tf.TensorSpec([], tf.int64)] +
                 [tf.TensorSpec([], tf.string)] * len(signature.specs))
    def enqueue(client_id, seq, *encoded):
      checks, tensors = validation.check_and_decode(signature, encoded)

      # Enqueue once per (client, seq): a resend of a message the learner
      # already has (client timed out, connection broke) is dropped.
      def claim():
        def mark_received():
          with tf.control_dependencies([received.insert(client_id, seq)]):
            return tf.constant(True)
        return tf.cond(seq > received.lookup(client_id), mark_received,
                       lambda: tf.constant(False))

      def do_enqueue():
        with tf.control_dependencies([fifo.enqueue_many(tensors)]):
          done = completed.insert(client_id, seq)
        with tf.control_dependencies([done]):
          return fifo.size()

      with tf.control_dependencies(checks):
        is_new = claim_lock.execute(claim)
      def duplicate():
        # A resend of a message this learner has: its queue size if that
        # message is queued, -1 while its first handler still waits for
        # room (the client then keeps polling instead of returning early).
        return tf.where(completed.lookup(client_id) >= seq, fifo.size(),
                        tf.constant(-1, tf.int32))

      return tf.cond(is_new, do_enqueue, duplicate)

    @tf.function(input_signature=[tf.TensorSpec([], tf.string)])
    def progress(client_id):
      return (received.lookup(client_id), completed.lookup(client_id),
              fifo.is_closed())

    info_values = protocol.encode_info(
        self._token, self.unroll_queue.signature.description + (
            protocol.RUN_SEPARATOR + self._run_description
            if self._run_description else ''),
        self._parameter_shapes, self._num_chunks, self.unroll_queue.capacity)

    @tf.function(input_signature=[])
    def info():
      token, description, ranks, dims, num_chunks, capacity = info_values
      return (tf.constant(token, tf.int64), tf.constant(description),
              tf.constant(ranks, tf.int32, shape=[len(ranks)]),
              tf.constant(dims, tf.int64, shape=[len(dims)]),
              tf.constant(num_chunks, tf.int64),
              tf.constant(capacity, tf.int32))

    @tf.function(input_signature=[])
    def parameters_version():
      return version.read_value()

    num_chunks = self._num_chunks
    chunk_size = protocol.PARAMETER_CHUNK_SIZE

    @tf.function(input_signature=[tf.TensorSpec([], tf.int32)])
    def get_parameters(chunk_index):
      check = tf.debugging.Assert(
          tf.logical_and(chunk_index >= 0, chunk_index < num_chunks),
          [tf.strings.join([
              'get_parameters: chunk index ', tf.strings.as_string(chunk_index),
              f' out of range [0, {num_chunks}).'])])

      def read():
        start = chunk_index * chunk_size
        # The slice is a copy, so the chunk cannot change after the lock is
        # released.
        return version.read_value(), snapshot[start:start + chunk_size]

      with tf.control_dependencies([check]):
        return lock.execute(read)

    return {protocol.ENQUEUE: enqueue, protocol.PROGRESS: progress,
            protocol.INFO: info,
            protocol.PARAMETERS_VERSION: parameters_version,
            protocol.GET_PARAMETERS: get_parameters}
