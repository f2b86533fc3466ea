"""The IMPALA learner: V-trace loss, TF1-style RMSProp, one training step.

Everything the learner does to a batch of unrolls lives here:

  * `Unroll`, the structure actors send and the learner consumes;
  * `compute_loss`, the V-trace actor-critic loss of paper section 4.2;
  * the optimiser (`optimizers.py`: TF1-style RMSProp, the paper's, or
    Adam) and the learning-rate schedule;
  * `Learner`, which owns the optimiser and the frame counter and runs one
    step as a `tf.function` under a `tf.distribute` strategy.

How a batch is laid out (as in the reference). An actor's unroll holds T+1
steps: step 0 is the last step of its previous unroll. At index t,
`agent_outputs[t]` is what the actor's agent produced from
`(agent_outputs[t-1].action, env_outputs[t-1])`, and `env_outputs[t]` is what
the environment returned for `agent_outputs[t].action`. `agent_state` is the
core state in effect after step 0, from which the learner's unroll starts.
"""

import collections
import dataclasses

import tensorflow as tf

from scalable_agent import corrections
from scalable_agent import environments
from scalable_agent import networks
from scalable_agent import optimizers
from scalable_agent import replay

# One actor's unroll; what crosses the network. Shapes for one unroll (a batch
# adds a leading [B]):
#   level_id      int32 []            index of the level in its suite
#   policy_version int64 []           learner step whose parameters acted
#   agent_state   nest of [...]       core state at the start (see above)
#   env_outputs   EnvOutput, [T+1, ...] fields
#   agent_outputs AgentOutput, [T+1, ...] fields (behaviour policy)
Unroll = collections.namedtuple(
    'Unroll', 'level_id policy_version agent_state env_outputs agent_outputs')

# What one learner step reports; all scalars. Sums are over the global batch
# (T * B steps); the rest are means over it or ratios.
StepStats = collections.namedtuple('StepStats', [
    'total_loss',        # The optimised loss.
    'policy_gradient_loss',
    'baseline_loss',     # 0.5 * sum (vs - V)^2, before baseline_cost.
    'entropy',           # sum of the policy's entropy (nats).
    'entropy_per_step',  # mean entropy of one step's policy (nats).
    'explained_variance',  # 1 - Var(vs - V) / Var(vs).
    'mean_abs_advantage',  # mean |pg_advantage|.
    'rho_clipped_fraction',  # steps with pi/mu > clip_rho_threshold.
    'c_clipped_fraction',    # steps with pi/mu > 1 (c_bar, V-trace's traces).
    'behaviour_kl',      # mean KL(mu || pi) per step, behaviour vs learner.
    'gradient_norm',     # global norm before clipping.
    'clip_factor',       # what clipping multiplied the gradient by (<= 1).
    'learning_rate',
    'num_env_frames',    # after this step.
    'skipped_steps',     # updates skipped so far: non-finite loss or gradient.
])

# Global norm of each loss term's gradient (each weighted as in the total
# loss), for one batch; see `Learner.gradient_norms_by_term`.
TermGradientNorms = collections.namedtuple(
    'TermGradientNorms', 'policy_gradient baseline entropy')


@dataclasses.dataclass(frozen=True)
class Hyperparameters:
  """Learner settings; defaults are the released code's defaults.

  `PAPER_ATARI` and `PAPER_DMLAB30` below hold the paper's settings.
  """
  batch_size: int = 2
  unroll_length: int = 100
  num_action_repeats: int = 4
  total_environment_frames: float = 1e9
  discounting: float = 0.99
  baseline_cost: float = 0.5
  entropy_cost: float = 0.00025
  reward_clipping: str = 'abs_one'
  learning_rate: float = 0.00048
  decay: float = 0.99
  momentum: float = 0.
  epsilon: float = 0.1
  # RMSProp's mean-square accumulator starts here (TF1: 1; PyTorch, Keras: 0).
  initial_mean_square: float = 1.
  # 'rmsprop' (TF1 semantics, the paper's) or 'adam' (betas 0.9, 0.999;
  # `epsilon` outside the square root, as Adam defines it; decay, momentum
  # and initial_mean_square unused).
  optimizer: str = 'rmsprop'
  max_gradient_norm: float | None = None
  # Table 2's off-policy corrections (corrections.VARIANTS).
  off_policy_correction: str = 'vtrace'
  # Experience replay (replay.py; paper section 5.2.2): the learner keeps
  # the last `replay_capacity` unrolls (0: no replay) and replaces this
  # fraction of each batch with unrolls drawn from them.
  replay_capacity: int = 0
  replay_fraction: float = 0.5

  @property
  def num_replayed(self):
    """Unrolls of each batch drawn from the replay buffer."""
    if not self.replay_capacity:
      return 0
    return replay.num_replayed(self.batch_size, self.replay_fraction)

  @property
  def num_fresh(self):
    """Unrolls of each batch taken from the actors' queue."""
    return self.batch_size - self.num_replayed

  @property
  def frames_per_step(self):
    """Environment frames one learner step consumes (fresh unrolls only)."""
    return self.num_fresh * self.unroll_length * self.num_action_repeats

  def __post_init__(self):
    corrections.check_variant(self.off_policy_correction)
    if not 0 <= self.replay_fraction < 1:
      raise ValueError('replay_fraction must be in [0, 1) (the rest of each '
                       f'batch is fresh), got {self.replay_fraction}.')
    if self.replay_capacity and self.replay_capacity < self.num_fresh:
      raise ValueError(
          f'replay_capacity {self.replay_capacity} is smaller than the fresh '
          f'unrolls of one batch ({self.num_fresh}); the paper keeps 10000.')


# Paper Table G.1 (Atari, per game).
PAPER_ATARI = Hyperparameters(
    batch_size=32, unroll_length=20, total_environment_frames=2e8,
    entropy_cost=0.01, learning_rate=0.0006, epsilon=0.01,
    max_gradient_norm=40., reward_clipping='abs_one')

# This project's defaults for one Atari game (--hparams=default): the paper's
# but 4 unrolls per batch (8x the updates per frame), RMSProp epsilon 1e-5
# instead of 0.01 (at batch 4 most gradients are far below sqrt(0.01), and
# the larger floor turned RMSProp into plain SGD), and the paper's experience
# replay (section 5.2.2) with a small buffer: half of each batch drawn from
# the last 1,000 unrolls, so each unroll is trained on about twice. Together
# they learn Pong to +18 within 10M frames (docs/learning, docs/pong);
# BUILD_NOTES.md, "Atari defaults", says why. Multi-task Atari keeps the
# paper's settings.
ATARI_DEFAULTS = dataclasses.replace(PAPER_ATARI, batch_size=4, epsilon=1e-5,
                                     replay_capacity=1000, replay_fraction=0.5)

# The released code's README command for DMLab-30.
PAPER_DMLAB30 = Hyperparameters(
    batch_size=32, unroll_length=100, total_environment_frames=1e10,
    entropy_cost=0.0033391318945337044,
    learning_rate=0.00031866995608948655, reward_clipping='soft_asymmetric')


def clip_rewards(rewards, mode):
  """Reward clipping of the released code.

  'abs_one': clip to [-1, 1]. 'soft_asymmetric': 5 tanh(r/5) for r > 0 and
  1.5 tanh(r/5) for r < 0 (squashes large positive rewards less than
  negative ones; the code's constants, which differ from the paper's figure).
  'none': unchanged.
  """
  if mode == 'abs_one':
    return tf.clip_by_value(rewards, -1., 1.)
  if mode == 'soft_asymmetric':
    squeezed = tf.tanh(rewards / 5.0)
    return tf.where(rewards < 0, .3 * squeezed, squeezed) * 5.
  if mode == 'none':
    return rewards
  raise ValueError(f'Unknown reward_clipping {mode!r}; choose abs_one, '
                   'soft_asymmetric or none.')


def compute_loss(agent, batch, hparams, entropy_cost=None):
  """V-trace actor-critic loss of a time-major batch.

  Args:
    agent: `networks.ImpalaAgent`.
    batch: `Unroll` with time-major fields: env_outputs and agent_outputs
      [T+1, B, ...], agent_state [B, ...].
    hparams: `Hyperparameters`.
    entropy_cost: scalar tensor overriding hparams.entropy_cost (the
      learner's `TunableHyperparameters`).

  Returns:
    (total_loss scalar, dict of scalars). The dict holds the three loss terms
    (sums over the T*B steps, before their costs) and the SUMS and counts
    from which `diagnostics_from_sums` derives means; sums, so that replicas'
    dicts add up to the global batch's.
  """
  learner_outputs, _ = agent.unroll(batch.agent_outputs.action,
                                    batch.env_outputs, batch.agent_state)
  # The learner's value of the last observation bootstraps the returns.
  bootstrap_value = learner_outputs.baseline[-1]

  # After this shift, index t holds: the behaviour action taken at t, the
  # reward and done it produced, and the learner's outputs for the
  # observation the action was taken in.
  agent_outputs = tf.nest.map_structure(lambda t: t[1:], batch.agent_outputs)
  rewards = batch.env_outputs.reward[1:]
  done = batch.env_outputs.done[1:]
  learner_outputs = tf.nest.map_structure(lambda t: t[:-1], learner_outputs)

  clipped_rewards = clip_rewards(rewards, hparams.reward_clipping)
  # An episode that ended at t does not bootstrap from the next observation
  # (it belongs to the next episode).
  discounts = tf.cast(~done, tf.float32) * hparams.discounting

  # V-trace by default; Table 2's other corrections on request.
  vtrace_returns = corrections.corrected_returns(
      hparams.off_policy_correction,
      behaviour_policy_logits=agent_outputs.policy_logits,
      target_policy_logits=learner_outputs.policy_logits,
      actions=agent_outputs.action,
      discounts=discounts,
      rewards=clipped_rewards,
      values=learner_outputs.baseline,
      bootstrap_value=bootstrap_value)

  # Policy gradient: -sum log pi(a_t) * pg_advantage_t. pg_advantages carry
  # no gradient (the corrections stop it).
  policy_gradient_loss = -tf.reduce_sum(
      vtrace_returns.target_action_log_probs * vtrace_returns.pg_advantages)
  value_errors = vtrace_returns.vs - learner_outputs.baseline
  baseline_loss = 0.5 * tf.reduce_sum(tf.square(value_errors))
  policy = tf.nn.softmax(learner_outputs.policy_logits)
  log_policy = tf.nn.log_softmax(learner_outputs.policy_logits)
  entropy = -tf.reduce_sum(policy * log_policy)

  if entropy_cost is None:
    entropy_cost = hparams.entropy_cost
  total_loss = (policy_gradient_loss
                + hparams.baseline_cost * baseline_loss
                - entropy_cost * entropy)

  # Diagnostics (no gradient flows through them).
  value_errors = tf.stop_gradient(value_errors)
  rhos = tf.exp(vtrace_returns.log_rhos)
  behaviour_log_policy = tf.nn.log_softmax(agent_outputs.policy_logits)
  behaviour_kl = tf.reduce_sum(
      tf.exp(behaviour_log_policy)
      * (behaviour_log_policy - tf.stop_gradient(log_policy)))

  # V-trace clips rho at its default clip_rho_threshold, 1.0, and the
  # traces c at 1.0, so one count serves both; they are reported apart
  # because Table 2's variants change the first. (For the other variants:
  # the fraction of steps with rho > 1, which they leave unclipped.)
  num_clipped = tf.reduce_sum(tf.cast(rhos > 1., tf.float32))

  return total_loss, {
      'policy_gradient_loss': policy_gradient_loss,
      'baseline_loss': baseline_loss,
      'entropy': entropy,
      'num_steps': tf.cast(tf.size(rewards), tf.float32),
      'sum_vs': tf.reduce_sum(vtrace_returns.vs),
      'sum_vs_squared': tf.reduce_sum(tf.square(vtrace_returns.vs)),
      'sum_value_error': tf.reduce_sum(value_errors),
      'sum_value_error_squared': tf.reduce_sum(tf.square(value_errors)),
      'sum_abs_advantage': tf.reduce_sum(
          tf.abs(vtrace_returns.pg_advantages)),
      'num_rho_clipped': num_clipped,
      'num_c_clipped': num_clipped,
      'sum_behaviour_kl': behaviour_kl,
  }


def diagnostics_from_sums(terms):
  """Means and ratios of the global batch from `compute_loss`'s sums.

  Returns:
    dict with entropy_per_step, explained_variance, mean_abs_advantage,
    rho_clipped_fraction, c_clipped_fraction, behaviour_kl.
  """
  n = terms['num_steps']

  def variance(total, total_squared):
    mean = total / n
    return total_squared / n - tf.square(mean)

  var_vs = variance(terms['sum_vs'], terms['sum_vs_squared'])
  var_error = variance(terms['sum_value_error'],
                       terms['sum_value_error_squared'])
  return {
      'entropy_per_step': terms['entropy'] / n,
      # 1 when the baseline predicts the targets exactly, 0 when it does no
      # better than their mean; undefined (nan) for constant targets.
      'explained_variance': 1. - var_error / var_vs,
      'mean_abs_advantage': terms['sum_abs_advantage'] / n,
      'rho_clipped_fraction': terms['num_rho_clipped'] / n,
      'c_clipped_fraction': terms['num_c_clipped'] / n,
      'behaviour_kl': terms['sum_behaviour_kl'] / n,
  }


def to_time_major(batch):
  """Batch-major `Unroll` ([B, T+1, ...] fields) -> time-major ([T+1, B])."""
  def swap(t):
    return tf.transpose(t, [1, 0] + list(range(2, t.shape.rank)))
  return batch._replace(
      env_outputs=tf.nest.map_structure(swap, batch.env_outputs),
      agent_outputs=tf.nest.map_structure(swap, batch.agent_outputs))


def unroll_value_ranges(num_actions, num_levels):
  """[low, high) of the `Unroll` fields the learner indexes with, by field
  path: the transport refuses unrolls outside them (an action outside the
  action set, a level id outside the run's table) instead of crashing."""
  return {'agent_outputs/action': (0, num_actions),
          'level_id': (0, num_levels)}


def unroll_specs(agent, observation_spec, unroll_length):
  """`Unroll` of tf.TensorSpec for ONE unroll (no batch dimension).

  Args:
    agent: `networks.ImpalaAgent` (for its action count and state shapes).
    observation_spec: nest of tf.TensorSpec of one environment's observation.
    unroll_length: T; unrolls hold T+1 steps.
  """
  steps = unroll_length + 1

  def over_time(shape, dtype):
    return tf.TensorSpec([steps] + list(shape), dtype)

  state_specs = tf.nest.map_structure(
      lambda s: tf.TensorSpec(s.shape[1:], s.dtype), agent.initial_state(1))
  return Unroll(
      level_id=tf.TensorSpec([], tf.int32),
      policy_version=tf.TensorSpec([], tf.int64),
      agent_state=state_specs,
      env_outputs=environments.EnvOutput(
          reward=over_time([], tf.float32),
          info=environments.EpisodeInfo(over_time([], tf.float32),
                                        over_time([], tf.int32),
                                        over_time([], tf.bool)),
          done=over_time([], tf.bool),
          observation=tf.nest.map_structure(
              lambda s: over_time(s.shape, s.dtype), observation_spec)),
      agent_outputs=networks.AgentOutput(
          action=over_time([], tf.int32),
          policy_logits=over_time([agent.num_actions], tf.float32),
          baseline=over_time([], tf.float32)))


def zeros_batch(specs, batch_size):
  """A batch of `batch_size` all-zero unrolls with the given specs."""
  return tf.nest.map_structure(
      lambda s: tf.zeros([batch_size] + s.shape.as_list(), s.dtype), specs)


class TunableHyperparameters(tf.Module):
  """The settings population-based training changes during a run.

  Learning rate (before the schedule), entropy cost, the optimiser's epsilon
  and the gradient-clipping threshold (0: none) are variables that the
  learner step reads, so changing them (`assign`) does not retrace the step;
  the training checkpoint saves them.
  """

  NAMES = ('learning_rate', 'entropy_cost', 'epsilon', 'max_gradient_norm')

  def __init__(self, hparams):
    super().__init__(name='hyperparameters')
    for name in self.NAMES:
      setattr(self, name, tf.Variable(float(getattr(hparams, name) or 0.),
                                      trainable=False, name=name))

  def values(self):
    """{name: float}."""
    return {name: float(getattr(self, name).numpy()) for name in self.NAMES}

  def assign(self, **values):
    for name, value in values.items():
      if name not in self.NAMES:
        raise ValueError(f'{name!r} is not tunable; tunable: '
                         f'{", ".join(self.NAMES)}.')
      getattr(self, name).assign(float(value))


def default_strategy():
  """MirroredStrategy over the visible GPUs when there are several, else the
  default strategy (one device: the GPU if there is one, else the CPU)."""
  gpus = tf.config.list_logical_devices('GPU')
  if len(gpus) > 1:
    return tf.distribute.MirroredStrategy([d.name for d in gpus])
  return tf.distribute.get_strategy()


def multi_worker_strategy(collective_addresses, worker_index):
  """A learner that spans hosts: `MultiWorkerMirroredStrategy` over workers.

  Each learner worker is one process (with its own unroll queue and actors)
  that runs TensorFlow's collective runtime on its own address; gradients
  are all-reduced across workers every step. Must be called before
  TensorFlow runs its first op in this process (the collective runtime is
  configured at startup).

  Args:
    collective_addresses: 'host:port' of every learner worker's collective
      server, in worker order (the same list on every worker). These are not
      the addresses actors connect to.
    worker_index: this worker's position in the list; worker 0 is the chief,
      which writes checkpoints and summaries.
  """
  resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
      tf.train.ClusterSpec({'worker': list(collective_addresses)}),
      task_type='worker', task_id=worker_index, rpc_layer='grpc')
  return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)


def _sum_over_replicas(values):
  """In replica context: a nest summed over every replica of every worker,
  in one batched all-reduce (the identity with one replica)."""
  return tf.distribute.get_replica_context().all_reduce(
      tf.distribute.ReduceOp.SUM, values)


class Learner:
  """Trains an agent on batches of unrolls under a `tf.distribute` strategy.

  The global batch is split across the strategy's replicas. Each replica
  computes the gradient of its part's summed loss; the gradients are summed
  across replicas (so the update equals the single-device update of the whole
  batch) and applied once, in cross-replica context, to the mirrored
  variables.

  Under `multi_worker_strategy` each worker process feeds its own share of
  the global batch (`worker_batch_size` unrolls from its own actors) and
  every worker applies the same all-reduced update, so their parameters stay
  equal; calls that run collectives (`step`, `gradient_norms_by_term`,
  `any_worker`, `broadcast_from_chief`) must be made by every worker in the
  same order.

  Args:
    agent: `networks.ImpalaAgent`; its variables are created here, under the
      strategy's scope.
    specs: `unroll_specs(...)` of one unroll.
    hparams: `Hyperparameters`.
    strategy: a `tf.distribute.Strategy`; `default_strategy()` if None.
    jit_compile: compile the step with XLA.
  """

  def __init__(self, agent, specs, hparams, strategy=None,
               jit_compile=False):
    self.agent = agent
    self.hparams = hparams
    self.strategy = strategy or default_strategy()
    self._num_replicas = self.strategy.num_replicas_in_sync
    if hparams.batch_size % self._num_replicas:
      raise ValueError(
          f'batch_size {hparams.batch_size} must be a multiple of the number '
          f'of replicas ({self._num_replicas}).')
    # Replicas of this process; the rest are other learner workers'.
    # (The default strategy has one replica and no worker_devices.)
    self._local_replicas = (len(self.strategy.extended.worker_devices)
                            if self._num_replicas > 1 else 1)
    self.num_workers = self._num_replicas // self._local_replicas
    self.worker_batch_size = hparams.batch_size // self.num_workers
    self.worker_num_fresh = hparams.num_fresh // self.num_workers
    if self.num_workers > 1 and (hparams.num_fresh % self.num_workers or
                                 hparams.num_replayed % self.num_workers):
      raise ValueError(
          f'The fresh ({hparams.num_fresh}) and replayed '
          f'({hparams.num_replayed}) unrolls of a batch must each divide '
          f'among the {self.num_workers} learner workers.')
    with self.strategy.scope():
      # Sonnet creates variables on first call: do it once, eagerly.
      compute_loss(agent, to_time_major(zeros_batch(specs, 1)), hparams)
      self.optimizer = optimizers.make_optimizer(agent.trainable_variables,
                                                 hparams)
      self.num_env_frames = tf.Variable(0, dtype=tf.int64, trainable=False,
                                        name='num_env_frames')
      self.skipped_steps = tf.Variable(0, dtype=tf.int64, trainable=False,
                                       name='skipped_steps')
      self.tunable = TunableHyperparameters(hparams)
    self._compiled_step = tf.function(self._distributed_step,
                                      jit_compile=jit_compile)
    self._compiled_term_norms = tf.function(self._distributed_term_norms)

  def _replica_gradients(self, batch):
    """Per replica: gradients and loss terms of this replica's sub-batch."""
    variables = self.agent.trainable_variables
    with tf.GradientTape() as tape:
      total_loss, terms = compute_loss(self.agent, to_time_major(batch),
                                       self.hparams,
                                       self.tunable.entropy_cost)
    gradients = tape.gradient(total_loss, variables)
    return _sum_over_replicas((gradients, dict(terms, total_loss=total_loss)))

  def _distributed_step(self, distributed_batch):
    """One update from a batch distributed over the replicas."""
    gradients, terms = self._local_result(self.strategy.run(
        self._replica_gradients, args=(distributed_batch,)))
    gradient_norm = tf.linalg.global_norm(gradients)
    # Global-norm clipping (tf.clip_by_global_norm's arithmetic), off where
    # the threshold is 0.
    max_norm = self.tunable.max_gradient_norm
    clip_factor = tf.where(max_norm > 0.,
                           tf.minimum(1., max_norm / gradient_norm), 1.)
    gradients = [g * clip_factor for g in gradients]
    # The rate for this step uses the frames seen before it, as the reference.
    learning_rate = optimizers.linear_learning_rate(
        self.tunable.learning_rate, self.num_env_frames,
        self.hparams.total_environment_frames)
    # A batch that makes the loss or a gradient non-finite (a NaN reward
    # from a broken environment, an overflow) would make every parameter
    # NaN, and the NaNs would be served to the actors and checkpointed:
    # skip the update instead, and count it. Its frames still count.
    finite = tf.math.is_finite(gradient_norm) & tf.math.is_finite(
        terms['total_loss'])

    def update():
      self.optimizer.apply(gradients, self.agent.trainable_variables,
                           learning_rate, epsilon=self.tunable.epsilon)
      return tf.constant(0, tf.int64)

    self.skipped_steps.assign_add(
        tf.cond(finite, update, lambda: tf.constant(1, tf.int64)))
    self.num_env_frames.assign_add(self.hparams.frames_per_step)
    return StepStats(
        total_loss=terms['total_loss'],
        policy_gradient_loss=terms['policy_gradient_loss'],
        baseline_loss=terms['baseline_loss'],
        entropy=terms['entropy'],
        gradient_norm=gradient_norm,
        clip_factor=clip_factor,
        learning_rate=learning_rate,
        num_env_frames=self.num_env_frames.read_value(),
        skipped_steps=self.skipped_steps.read_value(),
        **diagnostics_from_sums(terms))

  def _replica_term_gradients(self, batch):
    """Per replica: the gradient of each weighted loss term."""
    variables = self.agent.trainable_variables
    with tf.GradientTape(persistent=True) as tape:
      _, terms = compute_loss(self.agent, to_time_major(batch), self.hparams)
      weighted = TermGradientNorms(
          policy_gradient=terms['policy_gradient_loss'],
          baseline=self.hparams.baseline_cost * terms['baseline_loss'],
          entropy=-self.tunable.entropy_cost * terms['entropy'])
    return _sum_over_replicas(TermGradientNorms(
        # Zeros where a term does not reach a variable (the baseline's
        # head for the policy gradient): an all-reduce takes no None.
        *[tape.gradient(term, variables,
                        unconnected_gradients=tf.UnconnectedGradients.ZERO)
          for term in weighted]))

  def _distributed_term_norms(self, distributed_batch):
    gradients = self._local_result(self.strategy.run(
        self._replica_term_gradients, args=(distributed_batch,)))
    return TermGradientNorms(*[tf.linalg.global_norm(g) for g in gradients])

  def gradient_norms_by_term(self, batch):
    """Global gradient norm of each weighted loss term on a batch.

    Costs three backward passes and changes nothing, so the training loop
    calls it only when it logs (it answers "which term drives the update":
    at initialisation on Pong the baseline's gradient is ~9x the policy
    gradient's).

    Args:
      batch: as for `step`.

    Returns:
      `TermGradientNorms` of scalars: the norms of the gradients of
      policy_gradient_loss, baseline_cost * baseline_loss and
      -entropy_cost * entropy, before clipping.
    """
    return self._compiled_term_norms(self.distribute(batch))

  @property
  def frames(self):
    """Environment frames trained on so far, as a Python int."""
    # .numpy(): int() does not take a MultiWorkerMirroredStrategy variable.
    return int(self.num_env_frames.numpy())

  @property
  def is_chief(self):
    """True on the worker that writes checkpoints and summaries (worker 0;
    the only one without a multi-worker strategy)."""
    return self.num_workers == 1 or self.strategy.cluster_resolver.task_id == 0

  def any_worker(self, *flags):
    """For each flag, whether any learner worker raised it (an all-reduce
    across workers; the flags as given with a single worker). Workers use
    it to agree on decisions that change which collectives they run next:
    whether to stop, whether this step logs."""
    if self.num_workers == 1:
      return tuple(bool(f) for f in flags)
    local = tf.constant([float(bool(f)) for f in flags])
    raised = self._local_result(self.strategy.run(
        lambda: _sum_over_replicas(local)))
    return tuple(bool(v) for v in raised.numpy() > 0)

  def broadcast_from_chief(self, variables):
    """Sets `variables` on every worker to the chief's values (after the
    chief alone restored a checkpoint). An all-reduce of the chief's values
    and zeros from the others; a no-op with a single worker."""
    if self.num_workers == 1:
      return
    variables = list(variables)

    def chief_values():
      context = tf.distribute.get_replica_context()
      chief = tf.equal(context.replica_id_in_sync_group, 0)
      return _sum_over_replicas(
          [tf.where(chief, v.read_value(), tf.zeros_like(v))
           for v in variables])

    summed = self._local_result(self.strategy.run(chief_values))
    for variable, value in zip(variables, summed):
      variable.assign(value)

  def _local_result(self, values):
    """The first local replica's copy of values that every replica holds
    equal (the result of `_sum_over_replicas`)."""
    return tf.nest.map_structure(
        lambda v: self.strategy.experimental_local_results(v)[0], values)

  def distribute(self, batch):
    """Splits this worker's batch-major batch [worker_batch_size, ...]
    across its replicas (all of the global batch with a single worker)."""
    per_replica = self.hparams.batch_size // self._num_replicas

    def replica_slice(context):
      # Replica ids run over all workers' replicas, worker by worker.
      local = context.replica_id_in_sync_group % self._local_replicas
      start = local * per_replica
      return tf.nest.map_structure(lambda t: t[start:start + per_replica],
                                   batch)

    return self.strategy.experimental_distribute_values_from_function(
        replica_slice)

  def step(self, batch, compiled=True):
    """One training step on a global batch-major `Unroll` batch.

    Args:
      batch: `Unroll` with [B, T+1, ...] env/agent outputs, [B] level ids and
        [B, ...] agent state; B = worker_batch_size (hparams.batch_size
        with a single learner worker).
      compiled: run as a tf.function (False runs eagerly, for debugging).

    Returns:
      `StepStats`.
    """
    if batch.level_id.shape[0] != self.worker_batch_size:
      raise ValueError(
          f'Expected a batch of {self.worker_batch_size} unrolls '
          f'(hparams.batch_size {self.hparams.batch_size} over '
          f'{self.num_workers} learner worker(s)), got '
          f'{batch.level_id.shape[0]}.')
    step_fn = self._compiled_step if compiled else self._distributed_step
    return step_fn(self.distribute(batch))
