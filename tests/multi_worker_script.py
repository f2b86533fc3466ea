"""One learner worker of tests/test_multi_worker.py (run as a process).

    python multi_worker_script.py ADDRESSES WORKER_INDEX OUTPUT.npz

Builds the MLP learner of test_learner under `multi_worker_strategy`, with
the initial weights of `tf.random.set_seed(0)`, and trains 3 steps on its
half of a fixed batch of 4 unrolls (worker i takes unrolls 2i, 2i+1); then
writes its initial and trained parameters, losses and frame count, and what
`any_worker` and `broadcast_from_chief` gave.
"""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from scalable_agent import learner as learner_lib  # pylint: disable=g-import-not-at-top,wrong-import-position


def main(addresses, index, output):
  strategy = learner_lib.multi_worker_strategy(addresses.split(','), index)
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from test_learner import HP, mlp_learner, random_batch  # pylint: disable=g-import-not-at-top
  tf.random.set_seed(0)
  learner, specs = mlp_learner(HP, strategy)
  batch = random_batch(specs, HP.batch_size, 3, seed=5)
  half = learner.worker_batch_size
  mine = tf.nest.map_structure(lambda t: t[index * half:(index + 1) * half],
                               batch)
  variables = learner.agent.trainable_variables
  initial = {f'initial{i}': v.numpy() for i, v in enumerate(variables)}
  losses = [float(learner.step(mine).total_loss) for _ in range(3)]
  trained = {f'trained{i}': v.numpy() for i, v in enumerate(variables)}
  # Agreement: worker 1 raises the second flag only.
  agreed = learner.any_worker(False, index == 1)
  # Broadcast: every worker perturbs its weights differently, then takes
  # the chief's.
  first = variables[0]
  chief_value = first.numpy() + 1.
  first.assign(first + 1. + index)
  frames = int(learner.num_env_frames.numpy())
  learner.num_env_frames.assign_add(7 * index)  # An int64 one too.
  learner.broadcast_from_chief([first, learner.num_env_frames])
  np.savez(output, losses=losses, frames=frames,
           frames_after_broadcast=int(learner.num_env_frames.numpy()),
           num_workers=learner.num_workers, is_chief=learner.is_chief,
           agreed=agreed,
           broadcast_ok=np.array_equal(first.numpy(), chief_value),
           **initial, **trained)


if __name__ == '__main__':
  main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
