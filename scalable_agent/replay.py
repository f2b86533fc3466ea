"""Experience replay on the learner (paper section 5.2.2, Table 2).

"...a replay buffer of the last 10,000 unrolls (FIFO eviction), sampled
uniformly; each batch is 50% fresh unrolls and 50% replayed ones."

`ReplayBuffer` keeps the last `capacity` unrolls in preallocated TensorFlow
variables, one [capacity, ...] variable per unroll field, so memory is fixed
at start-up (`nbytes`) and adding or sampling is a scatter or a gather, not a
Python loop per unroll. `mix_with_replay` puts it into the learner's
`tf.data` input: each batch of fresh unrolls from the queue is added to the
buffer, then completed with unrolls drawn uniformly from the buffer.

Replayed unrolls keep what they were sent with, in particular the behaviour
policy's logits and the policy version, so the off-policy corrections see how
far the learner has moved since (`corrections.py`), and the console's policy
lag counts them.

The buffer is not checkpointed: at 10,000 Pong unrolls it holds 5.9 GB. A
resumed run starts with an empty buffer and refills it from fresh unrolls.
"""

import numpy as np
import tensorflow as tf


class ReplayBuffer(tf.Module):
  """The last `capacity` unrolls (FIFO eviction), sampled uniformly.

  Args:
    specs: nest of `tf.TensorSpec`, one unroll (no batch dimension).
    capacity: unrolls kept.
    seed: seed of the sampling generator (None: nondeterministic).
  """

  def __init__(self, specs, capacity, seed=None):
    super().__init__(name='replay_buffer')
    if capacity < 1:
      raise ValueError(f'Replay capacity must be >= 1, got {capacity}.')
    self.capacity = int(capacity)
    self.specs = specs
    self._storage = tf.nest.map_structure(
        lambda s: tf.Variable(tf.zeros([self.capacity] + s.shape.as_list(),
                                       s.dtype), trainable=False),
        specs)
    # Unrolls ever added; the next one goes to slot `added % capacity`.
    self._added = tf.Variable(0, dtype=tf.int64, trainable=False)
    self._generator = (tf.random.Generator.from_seed(seed) if seed is not None
                       else tf.random.Generator.from_non_deterministic_state())

  @property
  def nbytes(self):
    """Bytes the buffer holds (allocated up front)."""
    return sum(int(np.prod(v.shape)) * v.dtype.size
               for v in tf.nest.flatten(self._storage))

  def size(self):
    """Unrolls stored: int64 scalar tensor, at most `capacity`."""
    return tf.minimum(self._added, self.capacity)

  def add(self, unrolls):
    """Stores k unrolls (nest of [k, ...] tensors), evicting the oldest.

    k must be at most `capacity` (a batch cannot overwrite itself).
    """
    k = tf.shape(tf.nest.flatten(unrolls)[0], out_type=tf.int64)[0]
    tf.debugging.assert_less_equal(
        k, tf.constant(self.capacity, tf.int64),
        message=f'Cannot add more unrolls at once than the replay capacity '
        f'({self.capacity}).')
    slots = (self._added + tf.range(k)) % self.capacity
    for variable, values in zip(tf.nest.flatten(self._storage),
                                tf.nest.flatten(unrolls)):
      variable.scatter_nd_update(slots[:, None], values)
    self._added.assign_add(k)

  def sample(self, n):
    """n unrolls drawn uniformly, with replacement, from those stored.

    Returns:
      nest of [n, ...] tensors. The buffer must not be empty.
    """
    size = self.size()
    tf.debugging.assert_positive(size, message='The replay buffer is empty.')
    slots = self._generator.uniform([n], 0, size, dtype=tf.int64)
    return tf.nest.map_structure(lambda v: tf.gather(v, slots),
                                 self._storage)


def num_replayed(batch_size, replay_fraction):
  """Replayed unrolls in a batch of `batch_size` (the rest are fresh)."""
  return int(round(batch_size * replay_fraction))


def mix_with_replay(fresh_batches, buffer, num_replayed_per_batch):
  """A dataset of batches: the fresh unrolls, then replayed ones.

  Args:
    fresh_batches: `tf.data.Dataset` of nests of [F, ...] fresh unrolls.
    buffer: `ReplayBuffer` with the same structure.
    num_replayed_per_batch: R.

  Returns:
    `tf.data.Dataset` of nests of [F + R, ...]: rows 0..F-1 are the fresh
    unrolls in queue order, rows F.. are drawn uniformly from the buffer,
    which holds the fresh ones too (they are added first, so the buffer is
    never empty when sampled).
  """
  def add_and_sample(fresh):
    buffer.add(fresh)
    replayed = buffer.sample(num_replayed_per_batch)
    return tf.nest.map_structure(lambda f, r: tf.concat([f, r], 0), fresh,
                                 replayed)
  # A sequential map: batches are added in queue order.
  return fresh_batches.map(add_and_sample).prefetch(1)
