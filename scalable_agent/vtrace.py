"""V-trace off-policy actor-critic targets (IMPALA paper, section 4), in TF2.

A TensorFlow 2 port of the released TF1 `vtrace.py` of DeepMind's
scalable_agent, with the same functions, argument names, defaults and return
namedtuples. It runs eagerly and inside `tf.function`.

Notation used in docstrings and comments: T is the time dimension (0 .. T-1),
B the batch size, NUM_ACTIONS the number of actions. All sequences are
time-major, i.e. [T, B, ...]. pi is the target (learner) policy, mu the
behaviour (actor) policy, rho_t = pi(a_t|x_t) / mu(a_t|x_t).

The V-trace target of V(x_s) is defined (paper, eq. 1) by

  v_s = V(x_s) + sum_{t=s}^{s+n-1} gamma^{t-s} (prod_{i=s}^{t-1} c_i) delta_t V

with delta_t V = rho_t (r_t + gamma V(x_{t+1}) - V(x_t)),
rho_t = min(rho_bar, pi/mu) and c_i = min(c_bar, pi/mu), c_bar = 1. Here the
discount is per step (gamma_t; 0 where an episode ends) and n = T - s, i.e.
all remaining steps of the unroll, with V(x_T) = bootstrap_value. It is
computed with the equivalent backward recursion (paper, remark 1)

  v_s - V(x_s) = delta_s V + gamma_s c_s (v_{s+1} - V(x_{s+1})).

The policy-gradient advantage (paper, section 4.2) is

  pg_adv_s = min(rho_pg_bar, pi/mu) (r_s + gamma_s v_{s+1} - V(x_s))

with v_T = bootstrap_value.
"""

import collections

import tensorflow as tf

VTraceFromLogitsReturns = collections.namedtuple(
    'VTraceFromLogitsReturns',
    ['vs', 'pg_advantages', 'log_rhos',
     'behaviour_action_log_probs', 'target_action_log_probs'])

VTraceReturns = collections.namedtuple('VTraceReturns', 'vs pg_advantages')


def log_probs_from_logits_and_actions(policy_logits, actions):
  """Computes action log-probs from policy logits and actions.

  Args:
    policy_logits: A float32 tensor of shape [T, B, NUM_ACTIONS] with
      un-normalized log-probabilities parameterizing a softmax policy. Extra
      dimensions between B and NUM_ACTIONS are allowed, i.e.
      [T, B, ..., NUM_ACTIONS], if `actions` has them too.
    actions: An int32 (or int64) tensor of shape [T, B] (or [T, B, ...]
      matching `policy_logits` without its last dimension) with actions.

  Returns:
    A float32 tensor of shape [T, B] (or [T, B, ...]) with the log-probability
    of the chosen action under the policy.

  Raises:
    ValueError: if the ranks of `policy_logits` and `actions` do not fit.
    TypeError: if `actions` is not of an integer type.
  """
  policy_logits = tf.convert_to_tensor(policy_logits, dtype=tf.float32)
  # The cross-entropy op takes int32 and int64 labels alike, so int64 actions
  # are used as they are rather than cast.
  actions = tf.convert_to_tensor(actions, dtype_hint=tf.int32)
  if actions.dtype not in (tf.int32, tf.int64):
    raise TypeError('actions must be int32 or int64, got %s' % actions.dtype)

  # Static rank checks (the reference requires exactly [T, B, NUM_ACTIONS] and
  # [T, B]; here trailing dims are allowed as long as the two agree).
  actions_rank = actions.shape.rank
  if actions_rank is not None:
    if actions_rank < 2:
      raise ValueError(
          'actions must have rank >= 2 ([T, B, ...]), got shape %s' %
          actions.shape)
    policy_logits.shape.assert_has_rank(actions_rank + 1)
  elif policy_logits.shape.rank is not None and policy_logits.shape.rank < 3:
    raise ValueError(
        'policy_logits must have rank >= 3 ([T, B, ..., NUM_ACTIONS]), got '
        'shape %s' % policy_logits.shape)

  # log softmax(logits)[a] = -cross_entropy(one_hot(a), softmax(logits)); the
  # fused op is numerically stable and avoids materialising one-hots.
  return -tf.nn.sparse_softmax_cross_entropy_with_logits(
      logits=policy_logits, labels=actions)


def from_logits(behaviour_policy_logits,
                target_policy_logits,
                actions,
                discounts,
                rewards,
                values,
                bootstrap_value,
                clip_rho_threshold=1.0,
                clip_pg_rho_threshold=1.0,
                name='vtrace_from_logits'):
  r"""V-trace for softmax policies.

  Calculates V-trace actor critic targets for softmax policies as described in

  "IMPALA: Scalable Distributed Deep-RL with Importance Weighted Actor-Learner
  Architectures" by Espeholt, Soyer, Munos et al.

  Target policy refers to the policy we are interested in improving and
  behaviour policy refers to the policy that generated the given
  rewards and actions.

  Args:
    behaviour_policy_logits: A float32 tensor of shape [T, B, NUM_ACTIONS]
      with un-normalized log-probabilities parametrizing the softmax behaviour
      policy.
    target_policy_logits: A float32 tensor of shape [T, B, NUM_ACTIONS] with
      un-normalized log-probabilities parametrizing the softmax target policy.
    actions: An int32 tensor of shape [T, B] of actions sampled from the
      behaviour policy.
    discounts: A float32 tensor of shape [T, B] with the discount encountered
      when following the behaviour policy (0 where an episode ended).
    rewards: A float32 tensor of shape [T, B] with the rewards generated by
      following the behaviour policy.
    values: A float32 tensor of shape [T, B] with the value function estimates
      wrt. the target policy.
    bootstrap_value: A float32 tensor of shape [B] with the value function
      estimate at time T.
    clip_rho_threshold: A scalar float32 tensor with the clipping threshold for
      importance weights (rho) when calculating the baseline targets (vs).
      rho^bar in the paper. None disables this clipping.
    clip_pg_rho_threshold: A scalar float32 tensor with the clipping threshold
      on rho_s in \rho_s \delta log \pi(a|x) (r + \gamma v_{s+1} - V(x_s)).
      None disables this clipping.
    name: The name scope that all V-trace operations will be created in.

  Returns:
    A `VTraceFromLogitsReturns` namedtuple with the following fields:
      vs: A float32 tensor of shape [T, B]. Can be used as target to train a
        baseline (V(x_t) - vs_t)^2. Carries no gradient.
      pg_advantages: A float32 tensor of shape [T, B]. Can be used as an
        estimate of the advantage in the calculation of policy gradients.
        Carries no gradient.
      log_rhos: A float32 tensor of shape [T, B] containing the log importance
        sampling weights (log rhos).
      behaviour_action_log_probs: A float32 tensor of shape [T, B] containing
        behaviour policy action log probabilities (log \mu(a_t)).
      target_action_log_probs: A float32 tensor of shape [T, B] containing
        target policy action probabilities (log \pi(a_t)).
    The three log-prob fields keep their gradients (the policy-gradient loss
    differentiates target_action_log_probs).

  Raises:
    ValueError: if the static ranks of the inputs do not fit together.
  """
  behaviour_policy_logits = tf.convert_to_tensor(
      behaviour_policy_logits, dtype=tf.float32)
  target_policy_logits = tf.convert_to_tensor(
      target_policy_logits, dtype=tf.float32)
  actions = tf.convert_to_tensor(actions, dtype_hint=tf.int32)

  # Make sure the logits agree with each other; their fit with `actions` is
  # checked by log_probs_from_logits_and_actions and the rest by
  # from_importance_weights.
  if behaviour_policy_logits.shape.rank is not None:
    target_policy_logits.shape.assert_has_rank(
        behaviour_policy_logits.shape.rank)

  with tf.name_scope(name):
    target_action_log_probs = log_probs_from_logits_and_actions(
        target_policy_logits, actions)
    behaviour_action_log_probs = log_probs_from_logits_and_actions(
        behaviour_policy_logits, actions)
    # log(pi/mu), computed in log space so that tiny probabilities under the
    # behaviour policy do not overflow the ratio before clipping.
    log_rhos = target_action_log_probs - behaviour_action_log_probs
    vtrace_returns = from_importance_weights(
        log_rhos=log_rhos,
        discounts=discounts,
        rewards=rewards,
        values=values,
        bootstrap_value=bootstrap_value,
        clip_rho_threshold=clip_rho_threshold,
        clip_pg_rho_threshold=clip_pg_rho_threshold)
    return VTraceFromLogitsReturns(
        log_rhos=log_rhos,
        behaviour_action_log_probs=behaviour_action_log_probs,
        target_action_log_probs=target_action_log_probs,
        **vtrace_returns._asdict())


def from_importance_weights(log_rhos,
                            discounts,
                            rewards,
                            values,
                            bootstrap_value,
                            clip_rho_threshold=1.0,
                            clip_pg_rho_threshold=1.0,
                            name='vtrace_from_importance_weights'):
  r"""V-trace from log importance weights.

  Calculates V-trace actor critic targets as described in

  "IMPALA: Scalable Distributed Deep-RL with Importance Weighted Actor-Learner
  Architectures" by Espeholt, Soyer, Munos et al.

  In the notation used throughout documentation and comments, T refers to the
  time dimension ranging from 0 to T-1. B refers to the batch size. This code
  also supports the case where all tensors have the same number of additional
  dimensions, e.g., `rewards` is [T, B, C], `values` is [T, B, C],
  `bootstrap_value` is [B, C].

  Args:
    log_rhos: A float32 tensor of shape [T, B] representing the log importance
      sampling weights, i.e. log(target_policy(a) / behaviour_policy(a)).
      V-trace performs operations on rhos in log-space for numerical
      stability.
    discounts: A float32 tensor of shape [T, B] with discounts encountered when
      following the behaviour policy (0 where an episode ended).
    rewards: A float32 tensor of shape [T, B] containing rewards generated by
      following the behaviour policy.
    values: A float32 tensor of shape [T, B] with the value function estimates
      wrt. the target policy.
    bootstrap_value: A float32 of shape [B] with the value function estimate at
      time T.
    clip_rho_threshold: A scalar float32 tensor with the clipping threshold for
      importance weights (rho) when calculating the baseline targets (vs).
      rho^bar in the paper. If None, no clipping is applied.
    clip_pg_rho_threshold: A scalar float32 tensor with the clipping threshold
      on rho_s in \rho_s \delta log \pi(a|x) (r + \gamma v_{s+1} - V(x_s)). If
      None, no clipping is applied.
    name: The name scope that all V-trace operations will be created in.

  Returns:
    A VTraceReturns namedtuple (vs, pg_advantages) where:
      vs: A float32 tensor of shape [T, B]. Can be used as target to
        train a baseline (V(x_t) - vs_t)^2.
      pg_advantages: A float32 tensor of shape [T, B]. Can be used as the
        advantage in the calculation of policy gradients.
    Both are wrapped in tf.stop_gradient: they are regression / advantage
    targets, not something to differentiate through.

  Raises:
    ValueError: if the static ranks of the inputs do not fit together.
  """
  log_rhos = tf.convert_to_tensor(log_rhos, dtype=tf.float32)
  discounts = tf.convert_to_tensor(discounts, dtype=tf.float32)
  rewards = tf.convert_to_tensor(rewards, dtype=tf.float32)
  values = tf.convert_to_tensor(values, dtype=tf.float32)
  bootstrap_value = tf.convert_to_tensor(bootstrap_value, dtype=tf.float32)
  if clip_rho_threshold is not None:
    clip_rho_threshold = tf.convert_to_tensor(
        clip_rho_threshold, dtype=tf.float32)
  if clip_pg_rho_threshold is not None:
    clip_pg_rho_threshold = tf.convert_to_tensor(
        clip_pg_rho_threshold, dtype=tf.float32)

  # Make sure tensor ranks are consistent. These are static checks (they raise
  # ValueError at call / trace time); without them a mis-shaped
  # bootstrap_value would silently broadcast into wrong targets.
  rho_rank = log_rhos.shape.rank  # Usually 2.
  if rho_rank is not None:
    if rho_rank < 2:
      raise ValueError(
          'log_rhos must have rank >= 2 ([T, B, ...]), got shape %s' %
          log_rhos.shape)
    values.shape.assert_has_rank(rho_rank)
    bootstrap_value.shape.assert_has_rank(rho_rank - 1)
    discounts.shape.assert_has_rank(rho_rank)
    rewards.shape.assert_has_rank(rho_rank)
  if clip_rho_threshold is not None:
    clip_rho_threshold.shape.assert_has_rank(0)
  if clip_pg_rho_threshold is not None:
    clip_pg_rho_threshold.shape.assert_has_rank(0)

  with tf.name_scope(name):
    rhos = tf.exp(log_rhos)
    if clip_rho_threshold is not None:
      clipped_rhos = tf.minimum(clip_rho_threshold, rhos, name='clipped_rhos')
    else:
      clipped_rhos = rhos

    # Trace-cutting coefficients, c_bar = 1 (fixed, as in the paper's
    # experiments): c_t = min(1, pi/mu).
    cs = tf.minimum(1.0, rhos, name='cs')
    # Append bootstrapped value to get [v1, ..., v_t+1].
    values_t_plus_1 = tf.concat(
        [values[1:], tf.expand_dims(bootstrap_value, 0)], axis=0)
    deltas = clipped_rhos * (rewards + discounts * values_t_plus_1 - values)

    # Backward recursion v_s - V(x_s) = delta_s + gamma_s c_s (v_{s+1} -
    # V(x_{s+1})), starting from v_T - V(x_T) = 0 (V(x_T) is the bootstrap
    # value, which is its own target). This is O(T) instead of the O(T^2)
    # double sum in the definition.
    def scanfunc(acc, sequence_item):
      discount_t, c_t, delta_t = sequence_item
      return delta_t + discount_t * c_t * acc

    initial_values = tf.zeros_like(bootstrap_value)
    vs_minus_v_xs = tf.scan(
        fn=scanfunc,
        elems=(discounts, cs, deltas),
        initializer=initial_values,
        reverse=True,
        name='scan')

    # Add V(x_s) to get v_s.
    vs = tf.add(vs_minus_v_xs, values, name='vs')

    # Advantage for policy gradient: uses the V-trace target of the *next*
    # state, v_{s+1}, with v_T = bootstrap_value.
    vs_t_plus_1 = tf.concat(
        [vs[1:], tf.expand_dims(bootstrap_value, 0)], axis=0)
    if clip_pg_rho_threshold is not None:
      clipped_pg_rhos = tf.minimum(
          clip_pg_rho_threshold, rhos, name='clipped_pg_rhos')
    else:
      clipped_pg_rhos = rhos
    pg_advantages = (
        clipped_pg_rhos * (rewards + discounts * vs_t_plus_1 - values))

    # Make sure no gradients backpropagated through the returned values: vs is
    # a regression target for the baseline and pg_advantages a fixed weight
    # for grad log pi; letting gradients flow would bias both losses.
    return VTraceReturns(
        vs=tf.stop_gradient(vs), pg_advantages=tf.stop_gradient(pg_advantages))
