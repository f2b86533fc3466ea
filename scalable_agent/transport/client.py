"""The actor's side: sends unrolls to a `LearnerServer`, fetches parameters.

Actor:

  client = transport.ActorClient('learner-host:8001', unroll_specs)
  params = client.fetch_parameters(known_version=None)  # Parameters or None
  client.send(unrolls)  # nest of numpy arrays [k, ...]; blocks while full

Exactly-once sends. An `enqueue` call has a deadline (`rpc_timeout_s`) so that
a learner host that vanished is noticed, but the learner finishes a call the
client gave up on (tf rpc's server ignores deadlines and cancellations): a
message may land after its call timed out. So messages are numbered, and
after a deadline or a broken connection the client asks the learner's
`progress` before resending: it resends only a message the learner never got,
and waits (polling) for one that the learner holds while the queue is full.

Torn reads. Parameters come in chunks; a client that sees different versions
across chunks (the learner published between two chunk reads) fetches again.

Reconnection. A call to a learner that is down fails with DEADLINE_EXCEEDED,
one in flight when the learner dies with UNAVAILABLE. The client then builds a
fresh channel (a fresh channel connects at once, while the old one may sit in
gRPC's reconnect backoff for seconds) and retries until
`reconnect_timeout_s`.
"""

import collections
import logging
import threading
import time
import uuid

import numpy as np
import tensorflow as tf

from scalable_agent.transport import addresses
from scalable_agent.transport import errors
from scalable_agent.transport import protocol
from scalable_agent.transport import specs as specs_lib
from scalable_agent.transport import validation

_log = logging.getLogger(__name__)
_rpc = tf.distribute.experimental.rpc

# How often a fetch is retried when the learner publishes between two chunk
# reads, before giving up.
_MAX_TORN_READS = 20

_FIX_HINT = 'is the learner running? check --learner_address'

# Returned by `ActorClient.fetch_parameters`.
#   version: int, the version passed to `LearnerServer.publish`.
#   values: list of float32 numpy arrays, one per learner variable, in the
#     order and with the shapes of `LearnerServer`'s `parameters`.
Parameters = collections.namedtuple('Parameters', 'version values')


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
               run_description=''):
    """Connects to the learner (waiting for it to come up).

    Args:
      address: 'host:port' of the learner (its --learner_address).
      unroll_specs: Nest of `tf.TensorSpec`, one unroll without batch dim; must
        match the learner's.
      connect_timeout_s: float, how long to wait for the learner here.
      reconnect_timeout_s: float, how long later calls keep retrying while the
        learner is unreachable.
      run_description: what this actor trains ('level=pong torso=shallow');
        a learner that says it trains something else is refused at connect.
      rpc_timeout_s: float, deadline of one RPC. An enqueue that waits longer
        for room in the queue is not an error: the client then waits for the
        learner's receipt instead of resending.

    Raises:
      LearnerUnavailableError: if the learner does not answer within
        connect_timeout_s.
      UnrollRejectedError: if the learner's unroll structure differs.
      ValueError: one unroll does not fit in a message.
    """
    addresses.split_address(address)  # Fail early on a malformed address.
    self._address = address
    self._signature = specs_lib.UnrollSignature(unroll_specs)
    self._run_description = run_description
    if self._signature.unroll_bytes > protocol.MESSAGE_BUDGET_BYTES:
      raise ValueError(
          f'One unroll is {self._signature.unroll_bytes} bytes but a message '
          f'to the learner is limited to {protocol.MESSAGE_BUDGET_BYTES} '
          'bytes (gRPC 4 MiB limit of tf rpc); use shorter unrolls.')
    self._reconnect_timeout_s = float(reconnect_timeout_s)
    self._rpc_timeout_s = float(rpc_timeout_s)
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
  def learner_info(self):
    """`LearnerInfo` of the learner this client is connected to."""
    return self._info

  def unrolls_per_message(self):
    """How many unrolls fit in one enqueue message (< 4 MiB)."""
    return max(1,
               protocol.MESSAGE_BUDGET_BYTES // self._signature.unroll_bytes)

  def send(self, unrolls):
    """Sends unrolls to the learner's queue.

    Blocks while the queue is full (backpressure). Unrolls are enqueued in
    order, exactly once, in messages of `unrolls_per_message()` unrolls; the
    unrolls of one message enter the queue together, different messages (and
    other actors') may interleave.

    Args:
      unrolls: Nest shaped like unroll_specs of numpy arrays (or anything
        np.asarray takes) with a leading batch dim: [k, ...].

    Raises:
      UnrollRejectedError: wrong structure, dtype or shape (checked here, and
        by the learner against its own specs); nothing of that message is
        enqueued.
      LearnerUnavailableError: the learner stayed unreachable for
        reconnect_timeout_s.
      LearnerClosedError: the learner closed its queue.
    """
    arrays, k = self._signature.flatten(unrolls)
    per_message = self.unrolls_per_message()
    with self._lock:
      for start in range(0, k, per_message):
        encoded = [protocol.encode_field(x[start:start + per_message])
                   for x in arrays]
        self._seq += 1
        self._enqueue(encoded, self._seq)

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
        version = int(self._request(protocol.PARAMETERS_VERSION, [],
                                    protocol.VERSION_OUTPUT))
        info = self._info
        if (version == known_version and
            info.token == self._parameters_token):
          return None
        chunks = []
        for i in range(info.num_chunks):
          chunk_version, chunk = self._request(
              protocol.GET_PARAMETERS, [tf.constant(i, tf.int32)],
              protocol.CHUNK_OUTPUT)
          if int(chunk_version) != version or self._info is not info:
            break  # Torn read (new snapshot, or a restarted learner).
          chunks.append(chunk.numpy())
        else:
          self._parameters_token = info.token
          return Parameters(version, _unflatten(chunks, info))
      raise errors.TransportError(
          f'Parameters of {self._address} changed during each of '
          f'{_MAX_TORN_READS} fetches; publish less often.')

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
        raise errors.LearnerUnavailableError(
            f'Learner at {self._address} unreachable for {timeout_s:.1f} s '
            f'({_FIX_HINT}). Last error: {last_error}')
      # Short attempts: a waiting call on a channel in backoff would notice
      # a learner that came up only at the next backoff step.
      attempt_s = min(remaining, 2.0)
      started = time.monotonic()
      try:
        client = _rpc.Client.create('grpc', self._address, name=name,
                                    timeout_in_ms=max(1, int(attempt_s * 1e3)))
        code, message, value = _call(client, protocol.INFO, [],
                                     protocol.INFO_OUTPUT, attempt_s)
        if code == protocol.OK:
          break
        if code not in protocol.RETRYABLE:
          raise errors.TransportError(
              f'Learner at {self._address} answered info() with an error: '
              f'{message}')
        last_error = message
      except (tf.errors.DeadlineExceededError, tf.errors.UnavailableError,
              tf.errors.InvalidArgumentError) as e:
        # Raised by Client.create, which lists the server's methods: nothing
        # answers (DeadlineExceeded, Unavailable), or the listing succeeded
        # against something that is not a learner, or failed in a way tf
        # reports like that (InvalidArgument).
        last_error = protocol.clean_error(str(e))
      # Attempts that fail fast (e.g. bad host name) should not spin.
      if time.monotonic() - started < attempt_s:
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, 1.0)

    info = protocol.decode_info(value)
    structure, run = protocol.split_description(info.unroll_description)
    if structure != self._signature.description:
      raise errors.UnrollRejectedError(
          f'Actor and learner at {self._address} disagree on the unroll '
          f'structure.\n  learner: {structure}\n  actor:   '
          f'{self._signature.description}')
    if run and self._run_description and run != self._run_description:
      raise errors.UnrollRejectedError(
          f'Actor and learner at {self._address} train different runs '
          f'(learner: {run}; actor: {self._run_description}): start the '
          "actor with the learner's --level and --torso.")
    if self._info is not None and info.token != self._info.token:
      _log.warning('Reconnected to a new learner at %s.', self._address)
    self._info = info
    self._client = client

  def _request(self, method, args, output_specs):
    """An idempotent RPC, retried across reconnections. Returns its value."""
    while True:
      if self._client is None:
        self._connect(self._reconnect_timeout_s)
      code, message, value = _call(self._client, method, args, output_specs,
                                   self._rpc_timeout_s)
      if code == protocol.OK:
        return value
      if code in protocol.RETRYABLE:
        _log.info('%s to %s failed (%s); reconnecting.', method,
                  self._address, message)
        self._client = None
        continue
      raise errors.TransportError(
          f'{method} on learner {self._address} failed: {message}')

  # -- Unrolls -----------------------------------------------------------------

  def _enqueue(self, encoded, seq):
    """Delivers one message (list of F encoded fields) exactly once."""
    client_id = tf.constant(self._client_id)
    seq_t = tf.constant(seq, tf.int64)
    resend = True
    poll_s = 0.005
    while True:
      if resend:
        if self._client is None:
          self._connect(self._reconnect_timeout_s)
        code, message, value = _call(
            self._client, protocol.ENQUEUE, [client_id, seq_t] + encoded,
            protocol.ENQUEUE_OUTPUT, self._rpc_timeout_s,
            field_names=self._signature.names)
        if code == protocol.OK and int(value.numpy()) >= 0:
          return
        if code == protocol.OK:
          # -1: a resend of a message the learner already has but has not
          # queued yet (its first attempt waits for room): poll, as after a
          # timeout, so that backpressure holds.
          pass
        elif code == protocol.INVALID_ARGUMENT:
          raise errors.UnrollRejectedError(
              f'Learner at {self._address} rejected the unrolls: {message}')
        elif code == protocol.CANCELLED:
          raise errors.LearnerClosedError(
              f'Learner at {self._address} closed its queue: {message}')
        elif code not in protocol.RETRYABLE:
          raise errors.TransportError(
              f'enqueue on learner {self._address} failed: {message}')
      else:
        time.sleep(poll_s)
        poll_s = min(poll_s * 2, 0.2)
      # Timed out or connection broke: ask whether the learner has it. This
      # also reconnects if the learner is gone.
      progress = protocol.EnqueueProgress(*(
          x.numpy() for x in self._request(protocol.PROGRESS, [client_id],
                                           protocol.PROGRESS_OUTPUT)))
      if progress.completed >= seq:
        return
      if progress.closed:
        raise errors.LearnerClosedError(
            f'Learner at {self._address} closed its queue.')
      # received >= seq: it waits for room in the learner; do not resend.
      # Otherwise the learner never got it (or restarted): resend.
      resend = progress.received < seq


def _call(client, method, args, output_specs, timeout_s, field_names=None):
  """One RPC; returns (code, message, value). Never raises for RPC errors.

  field_names: for `enqueue`, the message's field names: an error in the
    decoding of one field's bytes becomes INVALID_ARGUMENT naming the field.
  """
  result = client.call(method, args, output_specs,
                       timeout_in_ms=max(1, int(timeout_s * 1e3)))
  code, message = result.get_error()
  code = int(code.numpy())
  if code == protocol.OK:
    return protocol.OK, '', result.get_value()
  raw = message.numpy()
  message = protocol.clean_error(raw)
  field = validation.malformed_field_index(raw) if field_names else None
  if field is not None:
    return protocol.INVALID_ARGUMENT, (
        f'unroll field {field_names[field]!r} is not a well-formed '
        f'serialized tensor ({message}); send tf.io.serialize_tensor '
        'output.'), None
  return code, message, None


def _unflatten(chunks, info):
  """Splits the concatenated chunks into arrays of `info.parameter_shapes`."""
  flat = np.concatenate(chunks) if chunks else np.zeros([0], np.float32)
  values, offset = [], 0
  for shape in info.parameter_shapes:
    size = int(np.prod(shape, dtype=np.int64))
    values.append(flat[offset:offset + size].reshape(shape))
    offset += size
  if offset != flat.size:
    raise errors.TransportError(f'Got {flat.size} parameter values, the '
                                f'learner announced {offset}.')
  return values
