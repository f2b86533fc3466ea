"""The wire between `ActorClient` and `LearnerServer`: methods, sizes, codes.

Both ends import this module; what is here is what they must agree on.

RPC methods registered by the learner (tf.functions run by tf rpc):

  enqueue(client_id, seq, field_0, ..., field_{F-1}) -> int32 queue size
    client_id: tf.string scalar, random per `ActorClient`.
    seq: int64 scalar, the message's number (1, 2, ...) for this client.
    field_i: tf.string scalar, `encode_field` of field i (`UnrollSignature`
      order) of k unrolls: [k, *spec.shape]. Validated, then enqueued;
      blocks while the queue is full.
  progress(client_id) -> `EnqueueProgress` fields.
  info() -> (int64 token, string description, int32 [R] ranks, int64 [D]
    dims, int64 num_chunks, int32 queue capacity); `decode_info` reads it.
  parameters_version() -> int64 version of the latest snapshot.
  get_parameters(int32 chunk_index) -> (int64 version, float32 [<= chunk
    size] values).

Message limit. tf rpc's gRPC channels keep gRPC's default 4 MiB limit on
received messages and TF exposes no option to raise it; a bigger message fails
with RESOURCE_EXHAUSTED. `ActorClient.send` therefore splits a batch of
unrolls into as many `enqueue` calls as needed, and parameters are served in
chunks of at most `PARAMETER_CHUNK_SIZE` float32 values.

Encoding. tf rpc puts tensors in TensorProtos with `AsProtoField`, which writes
uint8 values as varints in `int_val` (up to 2 bytes per value, slow to
encode). Every unroll field is therefore sent as `tf.io.serialize_tensor` of
the batched array: one tf.string scalar holding a TensorProto whose payload is
the raw bytes (`tensor_content`). The TensorProto also carries the dtype and
shape, which the learner checks before decoding.
"""

import collections
import re

import tensorflow as tf

# gRPC's default limit on a received message, which tf rpc does not let us
# change (both the server's requests and the client's responses are bound).
MAX_MESSAGE_BYTES = 4 * 1024 * 1024

# Separates the unroll structure from the run's description (level, torso)
# in the learner's `info`: unrolls of two runs can have identical specs.
RUN_SEPARATOR = ' || run: '


def split_description(description):
  """info's description -> (unroll structure, run description or '')."""
  structure, _, run = description.partition(RUN_SEPARATOR)
  return structure, run
# Room left in each message for the TensorProto and gRPC framing around the
# payload (method name, client id, per-field dtype and shape: < 1 KiB).
MESSAGE_HEADROOM_BYTES = 64 * 1024
MESSAGE_BUDGET_BYTES = MAX_MESSAGE_BYTES - MESSAGE_HEADROOM_BYTES
# float32 values per parameter chunk: 4,128,768 bytes of payload per response.
PARAMETER_CHUNK_SIZE = MESSAGE_BUDGET_BYTES // 4

# Method names.
ENQUEUE = 'enqueue'
PROGRESS = 'progress'
INFO = 'info'
PARAMETERS_VERSION = 'parameters_version'
GET_PARAMETERS = 'get_parameters'

# Output specs of the methods, needed by `Client.call` to unpack responses.
ENQUEUE_OUTPUT = tf.TensorSpec([], tf.int32)
PROGRESS_OUTPUT = (tf.TensorSpec([], tf.int64), tf.TensorSpec([], tf.int64),
                   tf.TensorSpec([], tf.bool))
INFO_OUTPUT = (tf.TensorSpec([], tf.int64), tf.TensorSpec([], tf.string),
               tf.TensorSpec([None], tf.int32), tf.TensorSpec([None], tf.int64),
               tf.TensorSpec([], tf.int64), tf.TensorSpec([], tf.int32))
VERSION_OUTPUT = tf.TensorSpec([], tf.int64)
CHUNK_OUTPUT = (tf.TensorSpec([], tf.int64), tf.TensorSpec([None], tf.float32))

# tf.errors codes as they come back from `StatusOrResult.get_error()`.
OK = 0
CANCELLED = tf.errors.CANCELLED  # enqueue: the learner closed its queue.
INVALID_ARGUMENT = tf.errors.INVALID_ARGUMENT  # enqueue: unrolls rejected.
# Codes after which the learner may simply be gone (down, restarting, network
# trouble): reconnect and retry. tf rpc calls wait for the channel to be ready
# (gRPC wait_for_ready), so a call to a learner that is down fails with
# DEADLINE_EXCEEDED, and a call in flight when the learner dies with
# UNAVAILABLE.
RETRYABLE = (tf.errors.DEADLINE_EXCEEDED, tf.errors.UNAVAILABLE)

# What the learner tells a client when it connects (`info` method).
#   token: int, random per LearnerServer; changes when the learner restarts.
#   unroll_description: str, `describe_specs(unroll_specs)` of the learner.
#   parameter_shapes: list of tuples, shapes of the learner's variables.
#   num_chunks: int, chunks `get_parameters` serves.
LearnerInfo = collections.namedtuple(
    'LearnerInfo', 'token unroll_description parameter_shapes num_chunks')

# Learner-side record of one client's messages (`progress` method).
#   received: int, highest sequence number validated and handed to the queue
#     (possibly still waiting for room); -1 if none.
#   completed: int, highest sequence number that is in the queue; -1 if none.
#   closed: bool, whether the queue is closed (learner shutting down).
EnqueueProgress = collections.namedtuple(
    'EnqueueProgress', 'received completed closed')


def encode_field(array):
  """The wire form of one field of k unrolls: a tf.string scalar."""
  return tf.io.serialize_tensor(array)


def encode_info(token, description, parameter_shapes, num_chunks,
                queue_capacity):
  """Python values of `info()`'s outputs (see the module doc)."""
  ranks = [len(s) for s in parameter_shapes]
  dims = [d for s in parameter_shapes for d in s]
  return token, description, ranks, dims, num_chunks, queue_capacity


def decode_info(outputs):
  """`LearnerInfo` from the tensors that `info()` returned.

  The last output, the queue capacity, is not read. It stays on the wire so
  that the wire format is unchanged: actors and learners started from older
  checkouts (transport.py as one module) still talk to this one.
  """
  token, description, ranks, dims, num_chunks, _ = outputs
  shapes, dims, i = [], dims.numpy().tolist(), 0
  for rank in ranks.numpy().tolist():
    shapes.append(tuple(dims[i:i + rank]))
    i += rank
  return LearnerInfo(int(token), description.numpy().decode(), shapes,
                     int(num_chunks))


def clean_error(message):
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
