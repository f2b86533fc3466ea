"""Experience replay: FIFO eviction, uniform sampling, the exact batch mix,
bounded memory, and a training loop that replays (paper section 5.2.2)."""

import resource
import threading

import numpy as np
import pytest
import tensorflow as tf

from scalable_agent import learner as learner_lib
from scalable_agent import replay
from scalable_agent import training
from scalable_agent import transport

import test_actor_and_training as loops

SPECS = {'marker': tf.TensorSpec([], tf.int64),
         'frames': tf.TensorSpec([3, 2], tf.uint8)}


def unrolls(markers):
  markers = np.asarray(markers, np.int64)
  return {'marker': tf.constant(markers),
          'frames': tf.constant(
              np.broadcast_to((markers % 256).astype(np.uint8)[:, None, None],
                              [len(markers), 3, 2]))}


def stored_markers(buffer):
  # Sampling many times finds every stored unroll (and nothing else).
  return set(buffer.sample(4000)['marker'].numpy().tolist())


def test_eviction_is_fifo():
  buffer = replay.ReplayBuffer(SPECS, capacity=10, seed=1)
  marker = 0
  for k in (3, 1, 4, 2, 5, 3, 4, 3):  # 25 unrolls in uneven batches.
    buffer.add(unrolls(range(marker, marker + k)))
    marker += k
    expected = set(range(max(0, marker - 10), marker))
    assert int(buffer.size()) == len(expected)
    assert stored_markers(buffer) == expected
  # Each unroll's fields stay together.
  sample = buffer.sample(100)
  np.testing.assert_array_equal(
      sample['frames'].numpy()[:, 0, 0], sample['marker'].numpy() % 256)


def test_sampling_is_uniform_over_what_is_stored():
  buffer = replay.ReplayBuffer(SPECS, capacity=64, seed=2)
  buffer.add(unrolls(range(100, 140)))  # 40 stored, 24 slots still empty.
  n = 200_000
  counts = np.bincount(buffer.sample(n)['marker'].numpy() - 100,
                       minlength=40)
  assert counts.size == 40  # Nothing outside what was stored.
  # Pearson's chi-square with 39 degrees of freedom: 99.9% of uniform
  # samples stay below 72.1.
  expected = n / 40
  chi_square = float(((counts - expected) ** 2 / expected).sum())
  assert chi_square < 72.1, counts
  # A biased sampler fails it: the first half twice as likely.
  biased = np.concatenate([np.full(20, 2 * n / 60), np.full(20, n / 60)])
  assert float(((biased - expected) ** 2 / expected).sum()) > 72.1


def test_batch_mix_is_exact():
  buffer = replay.ReplayBuffer(SPECS, capacity=6, seed=3)
  fresh = [list(range(i * 3, i * 3 + 3)) for i in range(8)]
  dataset = tf.data.Dataset.from_generator(
      lambda: (unrolls(m) for m in fresh),
      output_signature={k: tf.TensorSpec([None] + s.shape.as_list(),
                                         s.dtype)
                        for k, s in SPECS.items()})
  batches = list(replay.mix_with_replay(dataset, buffer, 5))
  assert len(batches) == 8
  for i, batch in enumerate(batches):
    markers = batch['marker'].numpy()
    assert markers.shape == (8,)
    # The fresh unrolls first, in queue order...
    np.testing.assert_array_equal(markers[:3], fresh[i])
    # ...then 5 from the buffer, which holds the last 6 unrolls added.
    newest = (i + 1) * 3
    assert set(markers[3:]) <= set(range(max(0, newest - 6), newest))


def test_memory_is_fixed_at_start():
  buffer = replay.ReplayBuffer(
      {'frames': tf.TensorSpec([21, 84, 84, 4], tf.uint8)}, capacity=200,
      seed=4)
  assert buffer.nbytes == 200 * 21 * 84 * 84 * 4
  frames = tf.zeros([8, 21, 84, 84, 4], tf.uint8)
  buffer.add({'frames': frames})
  before_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  for _ in range(300):  # 2400 unrolls through a buffer of 200.
    buffer.add({'frames': frames})
    buffer.sample(8)
  grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
               - before_kib) / 1024
  assert int(buffer.size()) == 200
  assert grown_mib < 100, f'grew {grown_mib:.0f} MiB'
  with pytest.raises(tf.errors.InvalidArgumentError, match='replay capacity'):
    buffer.add({'frames': tf.zeros([201, 21, 84, 84, 4], tf.uint8)})


def test_settings_that_do_not_fit_are_refused():
  with pytest.raises(ValueError, match='replay_fraction must be in'):
    learner_lib.Hyperparameters(replay_capacity=10, replay_fraction=1.0)
  with pytest.raises(ValueError, match='smaller than the fresh unrolls'):
    learner_lib.Hyperparameters(batch_size=32, replay_capacity=8)
  hp = learner_lib.Hyperparameters(batch_size=32, unroll_length=20,
                                   num_action_repeats=4,
                                   replay_capacity=10000)
  assert (hp.num_fresh, hp.num_replayed) == (16, 16)
  assert hp.frames_per_step == 16 * 20 * 4  # Fresh frames only.
  assert learner_lib.Hyperparameters(batch_size=32).num_fresh == 32


def test_training_loop_replays_and_counts_fresh_frames_only(tmp_path):
  loop, actor, _ = loops.make_loop(str(tmp_path))
  hp = learner_lib.dataclasses.replace(
      loop.learner.hparams, replay_capacity=12, replay_fraction=0.5,
      total_environment_frames=10 * 2 * 5)
  learner = learner_lib.Learner(loop.learner.agent, actor.specs, hp)
  queue = transport.UnrollQueue(actor.specs, capacity=8)
  endpoint = training.LearnerEndpoint(learner.agent.trainable_variables,
                                      queue)
  loop = training.TrainingLoop(learner, queue, endpoint, str(tmp_path),
                               ['level_a', 'level_b'], log_every_s=0.)
  seen = []
  step = learner.step

  def recording_step(batch, **kwargs):
    seen.append(batch.policy_version.numpy())
    return step(batch, **kwargs)

  learner.step = recording_step
  stop = threading.Event()
  thread = threading.Thread(target=loops._feed, args=(loop, actor, stop),  # pylint: disable=protected-access
                            daemon=True)
  thread.start()
  steps = loop.run()
  stop.set()
  queue.close()
  assert steps == 10
  # 2 fresh unrolls of 5 steps per update: 100 frames in 10 steps.
  assert int(learner.num_env_frames) == 100
  assert all(v.shape == (4,) for v in seen)  # Whole batches of 4.
  assert int(loop.replay_buffer.size()) == 12
  # Replayed unrolls are older than the fresh ones they follow, sometimes.
  assert any(v[2:].min() < v[:2].min() for v in seen[3:])
