"""In-graph validation of the messages a `LearnerServer` receives.

Bytes from the wire are checked before anything trusts them, in this order:
a field's dtype is the spec's; its declared shape is [k, *spec.shape] with k
bounded by the message limit (before anything is allocated); all fields
have the same k; floats are finite and integer fields lie in their
`value_ranges`. A failed check fails the RPC with INVALID_ARGUMENT and a
message that names the field (the client raises `UnrollRejectedError`); the
learner keeps serving.

Malformed bytes (not a TensorProto, or one cut short) fail the decoding op
itself, whose error cannot carry our message. Each field's decoding ops are
therefore named after the field's index (`field_op_name`): TF's error names
the failed node, and the client maps it back to the field
(`malformed_field_index`). This costs nothing per message, where catching
the error in-graph (a tf.data pipeline per field with `ignore_errors`) cost
~250 ms per message, 100x the whole send.
"""

import re

import tensorflow as tf

from scalable_agent.transport import protocol


def check_and_decode(signature, encoded):
  """In-graph validation and decoding of one `enqueue` message.

  The in-graph counterpart of `UnrollSignature.flatten`, for bytes from the
  wire: a failed check fails the RPC with INVALID_ARGUMENT and a message that
  names the field, and the learner keeps serving.

  Args:
    signature: `specs.UnrollSignature` of the learner's unrolls.
    encoded: F tf.string scalars, `protocol.encode_field` of each field.

  Returns:
    (checks, tensors): Assert ops to run before using the tensors, and the F
    decoded fields [k, *spec.shape].
  """
  names, specs = signature.names, signature.specs
  # DataType enum -> name, to say what dtype a rejected field had.
  dtype_names = tf.constant([_dtype_name(i) for i in range(32)])
  checks = []
  shape_protos = []
  # 1. Dtypes, read from the TensorProtos' dtype field before decoding
  #    (parse_tensor would fail on a mismatch without naming the field),
  #    with the shape header step 2 reads: one header decode per field.
  #    One field at a time: stacking the fields would copy the payload.
  for i, (name, spec, e) in enumerate(zip(names, specs, encoded)):
    proto = tf.io.decode_proto(e, 'tensorflow.TensorProto',
                               ['dtype', 'tensor_shape'],
                               [tf.int32, tf.string],
                               name=field_op_name('decode', i))
    shape_protos.append(tf.concat([proto.values[1], ['']], 0)[0])
    # [1], or [0] for a proto without dtype field: pad with DT_INVALID.
    dtype_sent = tf.concat([proto.values[0], [0]], 0)[0]
    sent = tf.gather(dtype_names, tf.clip_by_value(dtype_sent, 0, 31))
    checks.append(tf.debugging.Assert(
        tf.equal(dtype_sent, spec.dtype.as_datatype_enum),
        [tf.strings.join([
            f'unroll field {name!r} has dtype ', sent,
            f', the learner expects {spec.dtype.name}.'])]))
  # 2. Declared shapes, read from the TensorProtos' headers before decoding:
  #    parse_tensor allocates what the header declares, content or not (a
  #    16-byte header declaring [1, 2^30] float32 would cost 4 GiB). Each
  #    field must declare [k, *spec.shape] with k at most what one message
  #    can carry.
  max_k = max(1, protocol.MAX_MESSAGE_BYTES // signature.unroll_bytes)
  for i, (name, spec, shape_proto) in enumerate(
      zip(names, specs, shape_protos)):
    dims = tf.io.decode_proto(shape_proto, 'tensorflow.TensorShapeProto',
                              ['dim'], [tf.string],
                              name=field_op_name('decode_shape', i)).values[0]
    # A dim of size 0 leaves the field out: decode_proto pads with 0.
    declared = tf.reshape(tf.io.decode_proto(
        dims, 'tensorflow.TensorShapeProto.Dim', ['size'], [tf.int64],
        name=field_op_name('decode_dims', i)).values[0], [-1])
    rank_ok = tf.equal(tf.size(declared), 1 + spec.shape.rank)
    padded = tf.concat([declared, tf.zeros([1 + spec.shape.rank], tf.int64)],
                       0)[:1 + spec.shape.rank]
    fits = rank_ok & tf.reduce_all(
        tf.equal(padded[1:], tf.constant(spec.shape.as_list(), tf.int64))) & (
            padded[0] >= 0) & (padded[0] <= max_k)
    checks.append(tf.debugging.Assert(fits, [tf.strings.join([
        f'unroll field {name!r} declares shape [',
        tf.strings.reduce_join(tf.strings.as_string(declared), separator=','),
        f'], the learner expects [k,{",".join(map(str, spec.shape))}] with '
        f'k <= {max_k}.'])]))
  # 4. Shapes as decoded: every field [k, *spec.shape] with the same k.
  tensors = []
  with tf.control_dependencies(checks):
    for i, (spec, e) in enumerate(zip(specs, encoded)):
      tensors.append(tf.io.parse_tensor(e, out_type=spec.dtype,
                                        name=field_op_name('parse', i)))
  k = tf.shape(tensors[0], out_type=tf.int64)[0:1]
  for name, spec, t in zip(names, specs, tensors):
    sent = tf.strings.reduce_join(
        tf.strings.as_string(tf.shape(t, out_type=tf.int64)), separator=',')
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
  # 5. Values: finite floats, integers in their ranges (a NaN reward or an
  #    action outside the action set would poison or crash the learner).
  with tf.control_dependencies(checks):
    for name, spec, t in zip(names, specs, tensors):
      if spec.dtype.is_floating:
        checks.append(tf.debugging.Assert(
            tf.reduce_all(tf.math.is_finite(t)),
            [f'unroll field {name!r} has non-finite values (NaN or '
             'infinity).']))
      if name in signature.value_ranges:
        low, high = signature.value_ranges[name]
        checks.append(tf.debugging.Assert(
            tf.reduce_all((t >= low) & (t < high)),
            [tf.strings.join([
                f'unroll field {name!r} has values in [',
                tf.strings.as_string(tf.reduce_min(t)), ', ',
                tf.strings.as_string(tf.reduce_max(t)),
                f'], the learner takes [{low}, {high}).'])]))
  return checks, tensors


def field_op_name(step, index):
  """Name of the op that decodes field `index` (see the module docstring)."""
  return f'{step}_field_{index}'


_FAILED_FIELD_OP = re.compile(
    r'\{\{node (?:[^}]*/)?(?:decode|decode_shape|decode_dims|parse)'
    r'_field_(\d+)\}\}')


def malformed_field_index(error_message):
  """Index of the field whose decoding failed in a raw RPC error, or None."""
  if isinstance(error_message, bytes):
    error_message = error_message.decode('utf-8', 'replace')
  match = _FAILED_FIELD_OP.search(error_message)
  return int(match.group(1)) if match else None


def _dtype_name(enum):
  try:
    return tf.dtypes.as_dtype(enum).name
  except (TypeError, ValueError):
    return f'DataType({enum})'
