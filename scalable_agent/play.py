"""Playing levels with an agent under its suite's evaluation protocol.

What the evaluation command (`evaluate`, every level of a suite in worker
processes) and the evaluator during training (`periodic_evaluation`) share:
the protocol's environments, a `Policy` (an agent with its weights restored
and a compiled step) and `play_level`, which collects a level's finished
episodes.

Protocols (reference README, "Scoring" and "Environments"):
  * Atari: the whole game (a life loss does not end the episode), 1..30
    random no-ops at the start, a cap of 108,000 frames.
  * DMLab-30: the test variants of the levels with the evaluation mixer seed
    (`dmlab30.environment.make_batched_environment(training=False)`).
Actions are sampled from the policy, as during training and in the paper
(or, for `periodic_evaluation`'s greedy returns, its most probable ones).

Only finished episodes count, and each of a level's environments contributes
a fixed quota of them: stopping at the first N episodes to finish, whichever
environment they come from, would favour short episodes (which are usually
the bad ones) and bias the mean return.
"""

import collections

import numpy as np

from scalable_agent import checkpoints
from scalable_agent import suites

# One finished episode: the name its level is reported under, its return and
# its length in agent steps.
Episode = collections.namedtuple('Episode', 'level episode_return length')


def make_evaluation_environment(config, level, num_envs, seed=0,
                                max_episode_frames=None, dataset_path=None,
                                level_cache_dir=None):
  """`num_envs` environments of ONE level of `config`, evaluation protocol.

  Args:
    config: `suites.LevelConfig` of what is evaluated (one level or a suite).
    level: one of `config.levels`.
    num_envs: N.
    seed: base seed (environment i: seed + i).
    max_episode_frames: Atari frame cap (None: the protocol's 108,000).
    dataset_path, level_cache_dir: DMLab only.

  Returns:
    A BatchedEnvironment (`environments.py`).
  """
  return config.suite.make_environment(
      config, num_envs, seed=seed, training=False, levels=[level],
      options=suites.EnvironmentOptions(
          dataset_path=dataset_path, level_cache_dir=level_cache_dir,
          max_episode_frames=max_episode_frames))


def report_name(config, level):
  """The name a level's scores are reported under (DMLab: the test name)."""
  return config.suite.canonical_name(level, evaluation=True)


class Policy:
  """An agent with a compiled step, its weights restored from a checkpoint.

  Args:
    config: `suites.LevelConfig`.
    num_actions: the environments' action count.
    torso: torso name, or None for the suite's default.
    checkpoint: checkpoint prefix (see `checkpoints.resolve`) or None.
    env_output: an `EnvOutput` of the environments, used to build the agent's
      variables before restoring them.
  """

  def __init__(self, config, num_actions, torso, checkpoint, env_output):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    self.agent = config.suite.make_agent(num_actions, torso)
    # One trace per batch size: levels share the batch size, so a worker
    # compiles once.
    self._step = tf.function(self._agent_step)
    batch_size = env_output.reward.shape[0]
    self._step(np.zeros([batch_size], np.int32), env_output,
               self.agent.initial_state(batch_size))
    if checkpoint is not None:
      checkpoints.restore_agent(
          self.agent, checkpoint,
          f'--level={config.name} '
          f'--torso={torso or config.suite.default_torso} '
          f'({num_actions} actions)')

  def _agent_step(self, prev_action, env_output, state):
    # Episode statistics do not enter the network.
    return self.agent.step(prev_action, env_output._replace(info=()), state)

  def initial_state(self, batch_size):
    return self.agent.initial_state(batch_size)

  def step(self, prev_action, env_output, state):
    """(AgentOutput of tensors, new state) for a batch."""
    return self._step(prev_action, env_output, state)


def episode_quotas(episodes, num_envs):
  """int [num_envs]: finished episodes each environment contributes.

  Fixed in advance (not "the first `episodes` to finish") so that short
  episodes are not over-represented in the mean.
  """
  quotas = np.full([num_envs], episodes // num_envs, np.int64)
  quotas[:episodes % num_envs] += 1
  return quotas


def sample_actions(policy_logits, rng):
  """int32 [B] actions drawn from softmax(policy_logits [B, A]) with `rng`.

  The Gumbel-max trick: argmax(logits + Gumbel noise) is distributed as
  softmax(logits).
  """
  logits = np.asarray(policy_logits, np.float64)
  return np.argmax(logits + rng.gumbel(size=logits.shape),
                   axis=-1).astype(np.int32)


def play_level(policy, env, episodes, level_name, on_episode, rng=None,
               greedy=False):
  """Plays `episodes` finished episodes of one level with `policy`.

  Args:
    policy: `Policy` (or anything with `initial_state(n)` and
      `step(prev_action, env_output, state)` -> (AgentOutput, state)).
    env: BatchedEnvironment of that level, fresh (it is reset here).
    episodes: how many finished episodes to collect.
    level_name: name the episodes are reported under.
    on_episode: called with an `Episode` as each counted episode finishes.
    rng: `np.random.RandomState` to sample actions from the policy logits
      with, or None to play the actions the agent sampled itself. The
      agent's own sampling draws from one TF random stream per process, so
      a level's episodes would depend on which levels its worker played
      before; a generator per level makes a run reproducible.
    greedy: play the most probable action instead (argmax of the logits).

  Returns:
    List of `Episode`s, in the order they finished.
  """
  num_envs = env.num_envs
  quotas = episode_quotas(episodes, num_envs)
  counts = np.zeros([num_envs], np.int64)
  results = []
  env_output = env.reset()
  # The first observation starts an episode: a recurrent core starts from its
  # initial state (as the actors do).
  env_output = env_output._replace(done=np.ones([num_envs], bool))
  state = policy.initial_state(num_envs)
  prev_action = np.zeros([num_envs], np.int32)
  while np.any(counts < quotas):
    agent_output, state = policy.step(prev_action, env_output, state)
    if greedy:
      prev_action = np.argmax(np.asarray(agent_output.policy_logits),
                              axis=-1).astype(np.int32)
    elif rng is None:
      prev_action = np.asarray(agent_output.action, np.int32)
    else:
      prev_action = sample_actions(agent_output.policy_logits, rng)
    env_output = env.step(prev_action)
    finished = _finished_episodes(env, env_output)
    for i in np.flatnonzero(finished & (counts < quotas)):
      counts[i] += 1
      episode = Episode(level_name,
                        float(env_output.info.episode_return[i]),
                        int(env_output.info.episode_step[i]))
      results.append(episode)
      on_episode(episode)
  return results


def _finished_episodes(env, env_output):
  """bool [N]: where this step finished an episode worth reporting.

  The whole game for Atari (never just a life; in the evaluation protocol a
  life loss does not even set `done`). Batches say so in
  `info.episode_end` or, for Atari batches without it, `last_game_over`;
  elsewhere an episode ends with `done`.
  """
  end = getattr(env_output.info, 'episode_end', None)
  if end is None:
    end = getattr(env, 'last_game_over', None)
  return np.asarray(env_output.done if end is None else end, bool)

