"""Batched environments: what an actor steps.

An actor steps N environments together so that one forward pass of the agent
serves all of them (batched inference is far cheaper per step than N passes of
batch 1). Every environment source (gymnasium, ale-py's C++ vector env, DeepMind
Lab) is exposed through the same small protocol, `BatchedEnvironment`:

    env.num_envs       N
    env.num_actions    size of the discrete action set
    env.level_ids      int32 [N], index of each environment's level in its suite
    env.reset()        -> EnvOutput with a leading [N] dimension
    env.step(actions)  actions int [N] -> EnvOutput with a leading [N] dimension
    env.close()

Episodes reset themselves, as in the reference implementation: when
`done[i]` is True, `reward[i]` is the last reward of the finished episode,
`info[i]` holds that episode's return and length, and `observation[i]` is
already the first observation of the next episode. The learner relies on this
layout (see `learner.py`).

Rewards are raw (unclipped): the learner clips them, so that episode returns
logged by actors are the game's own scores.
"""

import collections

import numpy as np

# Statistics of the episode in progress, for reporting. `episode_return` is
# float32 [N], `episode_step` int32 [N] counts agent steps, `episode_end` bool
# [N] is True where this step finished an episode worth reporting, and then
# the two counts are that episode's. Usually `episode_end == done`; Atari
# training differs: a life loss sets `done` (the learner stops bootstrapping)
# but the reported episode is the whole game, so `episode_end` waits for the
# game over.
EpisodeInfo = collections.namedtuple('EpisodeInfo',
                                     'episode_return episode_step episode_end')

# What an environment returns after each step; every field has a leading [N]
# dimension. `observation` is a nest of arrays whose structure depends on the
# suite (a frame for Atari, (frame, instruction) for DMLab).
EnvOutput = collections.namedtuple('EnvOutput', 'reward info done observation')


class EpisodeTracker:
  """Running episode return and length for N environments.

  Environments hand out `EpisodeInfo` for the finished episode on the step
  where `done` is True, then start counting the next one from zero.
  """

  def __init__(self, num_envs):
    self._returns = np.zeros([num_envs], np.float32)
    self._steps = np.zeros([num_envs], np.int32)

  def reset(self):
    self._returns[:] = 0
    self._steps[:] = 0
    return EpisodeInfo(self._returns.copy(), self._steps.copy(),
                       np.zeros(self._returns.shape, bool))

  def update(self, reward, done):
    """Adds one step; returns EpisodeInfo (finished episodes where `done`)."""
    self._returns += reward
    self._steps += 1
    info = EpisodeInfo(self._returns.copy(), self._steps.copy(),
                       np.array(done, bool))
    self._returns[done] = 0
    self._steps[done] = 0
    return info


class GymnasiumBatch:
  """N gymnasium environments stepped in one process, with the protocol above.

  Each environment is a `gymnasium.Env` with a `Discrete` action space. An
  episode ends on `terminated or truncated`; the environment is then reset on
  the same step (the reference's layout, not gymnasium's next-step autoreset).

  Args:
    make_env: callable `i -> gymnasium.Env` for environment i of this batch.
    num_envs: N.
    seed: environment i is reset with seed `seed + i` the first time; later
      resets continue its own random stream.
    level_ids: int [N] suite level index of each environment (zeros if None).
  """

  def __init__(self, make_env, num_envs, seed=0, level_ids=None):
    self._envs = [make_env(i) for i in range(num_envs)]
    self._seed = seed
    self._tracker = EpisodeTracker(num_envs)
    self.num_envs = num_envs
    space = self._envs[0].action_space
    if not hasattr(space, 'n'):
      raise ValueError(
          f'IMPALA needs a discrete action space; got {space}. Wrap the '
          'environment so that it exposes gymnasium.spaces.Discrete actions.')
    self.num_actions = int(space.n)
    self.level_ids = (np.zeros([num_envs], np.int32) if level_ids is None
                      else np.asarray(level_ids, np.int32))

  def reset(self):
    observations = [env.reset(seed=self._seed + i)[0]
                    for i, env in enumerate(self._envs)]
    return EnvOutput(
        reward=np.zeros([self.num_envs], np.float32),
        info=self._tracker.reset(),
        done=np.zeros([self.num_envs], bool),
        observation=_stack(observations))

  def step(self, actions):
    observations = []
    rewards = np.zeros([self.num_envs], np.float32)
    dones = np.zeros([self.num_envs], bool)
    for i, (env, action) in enumerate(zip(self._envs, actions)):
      obs, reward, terminated, truncated, _ = env.step(int(action))
      if terminated or truncated:
        obs, _ = env.reset()
        dones[i] = True
      rewards[i] = reward
      observations.append(obs)
    info = self._tracker.update(rewards, dones)
    return EnvOutput(rewards, info, dones, _stack(observations))

  def close(self):
    for env in self._envs:
      env.close()


def _stack(observations):
  """Stacks a list of per-environment observation nests along a new axis 0."""
  first = observations[0]
  if isinstance(first, tuple):  # Includes namedtuples.
    stacked = [_stack([o[k] for o in observations]) for k in range(len(first))]
    return type(first)(*stacked) if hasattr(first, '_fields') else tuple(stacked)
  return np.stack(observations)
