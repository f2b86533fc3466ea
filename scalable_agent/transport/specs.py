"""What one unroll looks like, and the checks of unrolls against it.

`unroll_specs` is a nest (dict, namedtuple, tuple, ...) of `tf.TensorSpec`s
describing ONE unroll without batch dimension, e.g.

  {'frames': tf.TensorSpec([T + 1, 84, 84, 4], tf.uint8),
   'rewards': tf.TensorSpec([T + 1], tf.float32), ...}

Unrolls travel as k of them at a time: a nest of the same structure whose
leaves are arrays [k, *spec.shape] of the spec's dtype.

Every part of the transport flattens nests with dm-tree (`tree.flatten`, dict
keys sorted, as tf.nest does), so field i on the wire and in the queue is the
same leaf for the actor and the learner. `describe_specs` is what the two
compare when an actor connects; the same field names appear in every error
about a rejected unroll.
"""

import numpy as np
import tensorflow as tf
import tree

from scalable_agent.transport import errors

# Ends the message of a rejected unroll: the usual cause of a mismatch.
MISMATCH_HINT = 'is the actor running the same level, torso and unroll length?'


def _path_name(path):
  """'agent_outputs/baseline' for ('agent_outputs', 'baseline').

  Sequence indices read '[i]' ('observation/[0]'); a nest that is a single
  leaf (empty path) is '<unroll>'.
  """
  return '/'.join(f'[{p}]' if isinstance(p, int) else str(p)
                  for p in path) or '<unroll>'


def leaf_names(structure):
  """Names of the leaves of `structure`, in `tree.flatten` order.

  Args:
    structure: A nest (dicts, namedtuples, lists, tuples).

  Returns:
    A list of strings such as 'frames', 'agent_outputs/baseline' or '[0]'.
  """
  return [_path_name(path) for path, _ in tree.flatten_with_path(structure)]


def describe_specs(unroll_specs):
  """One-line description of an unroll structure, used to compare ends.

  Args:
    unroll_specs: A nest of `tf.TensorSpec` (one unroll, no batch dimension).

  Returns:
    A string such as 'frames: uint8[21,84,84,4]; rewards: float32[21]'.

  Raises:
    TypeError, ValueError: as `UnrollSignature`.
  """
  return UnrollSignature(unroll_specs).description


class UnrollSignature(object):
  """A validated, flattened `unroll_specs`; checks unrolls against it.

  The one place that knows the fields of an unroll: `UnrollQueue` checks
  in-process enqueues with it, `ActorClient` checks before sending, and
  `LearnerServer` builds its (in-graph) checks of received messages from its
  names and specs.

  Attributes:
    structure: the `unroll_specs` nest.
    names: list of F strings, the fields' paths ('agent_outputs/baseline').
    specs: list of F `tf.TensorSpec`, in the same (`tree.flatten`) order.
    description: str, e.g. 'frames: uint8[21,84,84,4]; rewards: float32[21]'.
    unroll_bytes: int, payload bytes of one unroll (all fields).
    value_ranges: dict field name -> (low, high): integer fields whose values
      must lie in [low, high) (e.g. actions, level ids). Float fields must
      always be finite: one NaN reward would make every parameter NaN.
  """

  def __init__(self, unroll_specs, value_ranges=None):
    """Validates `unroll_specs` (and the names in `value_ranges`).

    Raises:
      TypeError: a leaf is not a `tf.TensorSpec`.
      ValueError: no leaf, a shape that is not fully defined, or a dtype that
        cannot be sent (tf.string, resources, variants).
    """
    self.structure = unroll_specs
    self.names = leaf_names(unroll_specs)
    self.specs = tree.flatten(unroll_specs)
    if not self.specs:
      raise ValueError('unroll_specs has no TensorSpec.')
    for name, spec in zip(self.names, self.specs):
      if not isinstance(spec, tf.TensorSpec):
        raise TypeError(f'unroll_specs field {name!r} is a {type(spec)}, '
                        'expected a tf.TensorSpec.')
      if not spec.shape.is_fully_defined():
        raise ValueError(f'unroll_specs field {name!r} has shape '
                         f'{spec.shape}; the queue needs fully defined '
                         'shapes.')
      if not (spec.dtype.is_numpy_compatible and spec.dtype != tf.string):
        raise ValueError(f'unroll_specs field {name!r} has dtype '
                         f'{spec.dtype.name}; only numeric and bool fields '
                         'can be sent.')
    self.description = '; '.join(
        f'{name}: {spec.dtype.name}[{",".join(str(d) for d in spec.shape)}]'
        for name, spec in zip(self.names, self.specs))
    self.unroll_bytes = sum(s.dtype.size * s.shape.num_elements()
                            for s in self.specs)
    self.value_ranges = dict(value_ranges or {})
    unknown = sorted(set(self.value_ranges) - set(self.names))
    if unknown:
      raise ValueError(f'value_ranges names fields {unknown} that the '
                       f'unrolls do not have ({self.names}).')

  def flatten(self, unrolls):
    """Checks k unrolls against the specs and flattens them.

    Args:
      unrolls: nest shaped like the specs of numpy arrays (or anything
        `np.asarray` takes) with a leading batch dimension: [k, ...].

    Returns:
      (arrays, k): the F fields as C-contiguous numpy arrays [k, ...], in
      `names` order, and k.

    Raises:
      UnrollRejectedError: other fields, or a field of another dtype or
        shape, or fields with different k.
    """
    with_paths = tree.flatten_with_path(unrolls)
    names = [_path_name(path) for path, _ in with_paths]
    if names != self.names:
      missing = [n for n in self.names if n not in names]
      unexpected = [n for n in names if n not in self.names]
      detail = (f'missing {missing}, unexpected {unexpected}'
                if missing or unexpected else
                'same fields in another order: a dict for a namedtuple?')
      raise errors.UnrollRejectedError(
          f"Unroll structure differs from the learner's ({detail}): "
          f'{MISMATCH_HINT}')
    arrays, k = [], None
    for name, spec, (_, value) in zip(self.names, self.specs, with_paths):
      x = np.asarray(value)
      if (x.dtype != spec.dtype.as_numpy_dtype or x.ndim == 0 or
          x.shape[1:] != tuple(spec.shape.as_list())):
        raise errors.UnrollRejectedError(
            f'unroll field {name!r} is {x.dtype.name}{list(x.shape)}, the '
            f'learner expects [k] + {spec.dtype.name}{spec.shape.as_list()}: '
            f'{MISMATCH_HINT}')
      if k is None:
        k = x.shape[0]
      elif x.shape[0] != k:
        raise errors.UnrollRejectedError(
            f'unroll field {name!r} has {x.shape[0]} unrolls, field '
            f'{self.names[0]!r} has {k}.')
      self._check_values(name, spec, x)
      arrays.append(np.ascontiguousarray(x))
    return arrays, k

  def _check_values(self, name, spec, x):
    """UnrollRejectedError if field `name`'s values `x` are out of range
    or (floats) not finite."""
    if spec.dtype.is_floating and not np.isfinite(x).all():
      raise errors.UnrollRejectedError(
          f'unroll field {name!r} has {int(np.size(x) - np.isfinite(x).sum())}'
          ' non-finite values (NaN or infinity).')
    if name in self.value_ranges:
      low, high = self.value_ranges[name]
      if x.size and (x.min() < low or x.max() >= high):
        raise errors.UnrollRejectedError(
            f'unroll field {name!r} has values in [{x.min()}, {x.max()}], '
            f'the learner takes [{low}, {high}).')

  def pack(self, flat):
    """The nest shaped like the specs with the F values of `flat`."""
    return tree.unflatten_as(self.structure, flat)
