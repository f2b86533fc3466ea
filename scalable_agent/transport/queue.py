"""The learner's bounded FIFO queue of unrolls and its tf.data view.

Both wirings of the learner use it: actors in the learner's process enqueue
into it directly (`UnrollQueue.enqueue`), actors in other processes reach it
through `LearnerServer`, whose RPC handlers enqueue into the same
`tf.queue.FIFOQueue`. A full queue blocks the enqueuer: backpressure, not data
loss.
"""

import tensorflow as tf

from scalable_agent.transport import specs as specs_lib


class UnrollQueue(object):
  """The learner's bounded FIFO queue of unrolls and its tf.data view.

  Thread-safe: any thread may enqueue, read the size or close while another
  iterates over `dataset()`.

  Attributes:
    capacity: int, unrolls held before enqueuers block.
    signature: `specs.UnrollSignature` of the unrolls.
    fifo: the `tf.queue.FIFOQueue`, one component per field (signature
      order), each of the field's spec (no batch dimension).
  """

  def __init__(self, unroll_specs, capacity, value_ranges=None):
    """Creates the (empty) queue.

    Args:
      unroll_specs: nest of `tf.TensorSpec`, ONE unroll without batch
        dimension.
      capacity: int >= 1, unrolls held before enqueuers block.
      value_ranges: see `UnrollSignature`: [low, high) of integer fields.

    Raises:
      TypeError, ValueError: invalid `unroll_specs` or `capacity`.
    """
    self.signature = specs_lib.UnrollSignature(unroll_specs, value_ranges)
    self.capacity = int(capacity)
    if self.capacity < 1:
      raise ValueError(f'Queue capacity must be >= 1, got {capacity}.')
    # One Python object, captured by the tf.functions that use it (the RPC
    # handlers, `dataset()`): FIFOQueue(shared_name=...) is ignored in eager
    # mode, so the queue is shared by capture, not by name.
    self.fifo = tf.queue.FIFOQueue(
        self.capacity, dtypes=[s.dtype for s in self.signature.specs],
        shapes=[s.shape for s in self.signature.specs], name='unroll_queue')

  def enqueue(self, unrolls):
    """Adds k unrolls, a nest like the specs with a leading [k] dimension.

    The k unrolls enter the queue together. Blocks while the queue is full.

    Raises:
      UnrollRejectedError: the unrolls do not match the specs (nothing is
        added).
      tf.errors.CancelledError: the queue was closed while this waited.
    """
    arrays, _ = self.signature.flatten(unrolls)
    self.fifo.enqueue_many(arrays)

  def queue_size(self):
    """Returns the number of unrolls in the queue (an int)."""
    return int(self.fifo.size().numpy())

  def close(self):
    """Ends `dataset()` iterators and releases blocked enqueuers."""
    self.fifo.close(cancel_pending_enqueues=True)

  def dataset(self, batch_size, prefetch=1):
    """A dataset of batches of unrolls dequeued from the queue, in FIFO order.

    Args:
      batch_size: int, unrolls per batch (B).
      prefetch: int, batches dequeued ahead of the consumer.

    Returns:
      A `tf.data.Dataset` whose elements are nests shaped like the specs with
      tensors [B, ...] (batch-major). It ends after `close()`, once fewer than
      `batch_size` unrolls are left.

    Stop iterating with `close()`, `break` or by deleting the iterator. Do
    not append transformations that stop by themselves (`take`, `zip` with a
    shorter dataset) after a prefetch: they drop the prefetch iterator while
    its dequeue waits on an empty queue, and that dequeue is not cancelled
    (measured: `dataset(...).take(1)` hangs once the queue is empty). Use
    `prefetch=0` and prefetch after such transformations instead.
    """
    fifo, signature = self.fifo, self.signature

    def more(_):
      return tf.logical_or(tf.logical_not(fifo.is_closed()),
                           fifo.size() >= batch_size)

    def dequeue(_):
      flat = fifo.dequeue_many(batch_size)
      if not isinstance(flat, (list, tuple)):  # A one-field queue.
        flat = [flat]
      return signature.pack(list(flat))

    # `more` stops the dataset once the queue is closed. A dequeue that was
    # already waiting when the queue closed fails (OutOfRange, which tf.data
    # reports as InvalidArgument); `ignore_errors` drops that element and
    # `more` then ends the dataset. (tf.data cannot ignore one error type
    # only; dequeues cannot fail otherwise: unrolls are validated on
    # enqueue.) A sequential map keeps FIFO order.
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
