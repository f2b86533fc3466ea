"""IMPALA actors: step a batch of environments with the agent, emit unrolls.

An `Actor` owns N environments (a `BatchedEnvironment`, see
environments.py) and one copy of the agent. Each call to `unroll()` runs the
agent for T steps on all N environments at once (one batched forward pass per
step) and returns N unrolls of T+1 steps, laid out as `learner.Unroll`
expects: step 0 repeats the last step of the previous unroll, so consecutive
unrolls overlap by one step and the learner can bootstrap from it.

`run_actor` is the actor's whole life: take the learner's newest parameters
(skipped when they have not changed), collect an unroll, send it, repeat. It
talks to the learner through a connection with two methods,

    connection.fetch_parameters(known_version) -> None | (version, [arrays])
    connection.send(unrolls)                   # nest of [k, ...] numpy arrays

which is `transport.ActorClient` across processes and machines, and
`InProcessConnection` below when actor and learner share a process (tests,
debugging). The actor code is the same either way.
"""

import numpy as np
import tensorflow as tf

from scalable_agent import learner as learner_lib
from scalable_agent import networks


def _observation_spec(env_output):
  """Spec of ONE environment's observation from a batched EnvOutput."""
  return tf.nest.map_structure(
      lambda x: tf.TensorSpec(x.shape[1:], tf.as_dtype(x.dtype)),
      env_output.observation)


class Actor:
  """Collects unrolls from N environments with one agent.

  Args:
    agent: `networks.ImpalaAgent`. Its variables are created here.
    env: a `BatchedEnvironment` with N environments.
    unroll_length: T.
  """

  def __init__(self, agent, env, unroll_length):
    self.agent = agent
    self.env = env
    self.unroll_length = unroll_length
    # No learner version yet: the learner's first published version is 0,
    # and a 0 here would make the first fetch a no-op, so the first unroll
    # would act with this copy's own random initial weights.
    self.policy_version = -1
    n = env.num_envs
    env_output = env.reset()
    # The first observation starts an episode: `done` makes a recurrent core
    # start from its initial state, as in the reference.
    self._env_output = env_output._replace(done=np.ones([n], bool))
    self._agent_output = networks.AgentOutput(
        action=np.zeros([n], np.int32),
        policy_logits=np.zeros([n, env.num_actions], np.float32),
        baseline=np.zeros([n], np.float32))
    self._state = tf.nest.map_structure(lambda t: t.numpy(),
                                        agent.initial_state(n))
    self.observation_spec = _observation_spec(env_output)
    self.specs = learner_lib.unroll_specs(agent, self.observation_spec,
                                          unroll_length)
    # One eager call first: it creates the variables (in float32, also
    # under --bfloat16, whose mixed precision starts from an agent's second
    # call); the traced step is then in the compute type.
    self._agent_step(self._agent_output.action, self._env_output,
                     self._state)
    self._step = tf.function(self._agent_step)
    self._step(self._agent_output.action, self._env_output, self._state)

  def _agent_step(self, prev_action, env_output, state):
    # Episode statistics do not enter the network.
    return self.agent.step(prev_action, env_output._replace(info=None), state)

  @property
  def variables(self):
    return self.agent.trainable_variables

  def set_parameters(self, version, values):
    """Loads the learner's parameters (a list of arrays, variable order)."""
    for variable, value in zip(self.variables, values):
      variable.assign(value)
    self.policy_version = version

  def unroll(self):
    """Runs T steps on every environment.

    Returns:
      `learner.Unroll` of numpy arrays, batch-major: [N] level ids and
      versions, [N, ...] initial core state, [N, T+1, ...] env and agent
      outputs.
    """
    initial_state = self._state
    env_outputs = [self._env_output]
    agent_outputs = [self._agent_output]
    for _ in range(self.unroll_length):
      agent_output, state = self._step(self._agent_output.action,
                                       self._env_output, self._state)
      self._agent_output = tf.nest.map_structure(lambda t: t.numpy(),
                                                 agent_output)
      self._state = tf.nest.map_structure(lambda t: t.numpy(), state)
      self._env_output = self.env.step(self._agent_output.action)
      env_outputs.append(self._env_output)
      agent_outputs.append(self._agent_output)

    def stack_time(*steps):  # T+1 arrays [N, ...] -> [N, T+1, ...]
      return np.stack(steps, axis=1)

    n = self.env.num_envs
    return learner_lib.Unroll(
        level_id=np.asarray(self.env.level_ids, np.int32),
        policy_version=np.full([n], self.policy_version, np.int64),
        agent_state=initial_state,
        env_outputs=tf.nest.map_structure(stack_time, *env_outputs),
        agent_outputs=tf.nest.map_structure(stack_time, *agent_outputs))


def episode_statistics(unrolls):
  """Finished episodes in a batch-major Unroll (numpy).

  Step 0 of an unroll repeats the previous unroll's last step, so only steps
  1..T are counted (each episode end is seen exactly once).

  Returns:
    list of (level_id, episode_return, episode_step).
  """
  info = unrolls.env_outputs.info
  done = np.asarray(info.episode_end)[:, 1:]
  returns = np.asarray(info.episode_return)[:, 1:]
  steps = np.asarray(info.episode_step)[:, 1:]
  level_ids = np.broadcast_to(np.asarray(unrolls.level_id)[:, None],
                              done.shape)
  return list(zip(level_ids[done].tolist(), returns[done].tolist(),
                  steps[done].tolist()))


def run_actor(actor, connection, max_unrolls=None, should_stop=None):
  """The actor loop: newest parameters, one unroll, send; until told to stop.

  Args:
    actor: `Actor`.
    connection: see the module docstring.
    max_unrolls: stop after this many unrolls (None: run forever).
    should_stop: optional callable; the loop ends when it returns True.

  Returns:
    number of unrolls sent.
  """
  sent = 0
  while max_unrolls is None or sent < max_unrolls:
    if should_stop is not None and should_stop():
      break
    update = connection.fetch_parameters(actor.policy_version)
    if update is not None:
      actor.set_parameters(*update)
    connection.send(actor.unroll())
    sent += 1
  return sent


class InProcessConnection:
  """Actor <-> learner in one process: parameters by reference, a queue.

  The learner side is anything with `parameters_version()`,
  `parameter_values()` and `enqueue(unrolls)` (see training.py).
  """

  def __init__(self, learner_endpoint):
    self._endpoint = learner_endpoint

  def fetch_parameters(self, known_version):
    version = self._endpoint.parameters_version()
    if version == known_version:
      return None
    return version, self._endpoint.parameter_values()

  def send(self, unrolls):
    self._endpoint.enqueue(unrolls)
