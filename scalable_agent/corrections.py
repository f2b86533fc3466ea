"""The off-policy corrections compared in the paper's Table 2 (section 5.2.1).

The learner's loss (learner.compute_loss) needs three things from a batch of
behaviour data: value targets vs_t for the baseline, advantages for the
policy gradient, and the log-probability log pi(a_t|x_t) whose gradient the
policy gradient follows. The paper compares four ways of getting them:

  'vtrace'    V-trace (section 4): vs_t are the V-trace targets and the
              advantage is min(1, rho_t) (r_t + gamma_t vs_{t+1} - V(x_t)).
              The default.
  'one_step'  "1-step importance sampling: no off-policy correction when
              optimising V(x). For the policy gradient, multiply the
              advantage at each time step by the corresponding importance
              weight." vs_t are the n-step returns bootstrapped from the
              learner's values, as if the data were on-policy, and the
              advantage is rho_t (vs_t - V(x_t)), with the importance weight
              rho_t = pi(a_t|x_t) / mu(a_t|x_t) NOT truncated (the paper
              truncates only in V-trace). "V-trace without the traces."
  'epsilon'   "epsilon-correction: add a small value (epsilon = 1e-6) during
              gradient calculation to prevent log pi(a) from becoming very
              small and leading to numerical instabilities." No correction
              otherwise: targets and advantages as in 'none', and the policy
              gradient follows log(pi(a_t|x_t) + 1e-6).
  'none'      "No-correction: no off-policy correction, e.g. treating the
              experience as on-policy." vs_t are the n-step returns and the
              advantage is vs_t - V(x_t).

The n-step return of step t runs to the end of the unroll:
vs_t = r_t + gamma_t vs_{t+1}, vs_T = V(x_T) (the bootstrap value); it is
V-trace with every importance weight set to 1, which is how it is computed.

Shapes are time-major: [T, B] for per-step values, [T, B, NUM_ACTIONS] for
logits, [B] for the bootstrap value.
"""

import collections

import tensorflow as tf

from scalable_agent import vtrace

VARIANTS = ('vtrace', 'one_step', 'epsilon', 'none')

# The epsilon variant's constant inside log(pi(a) + EPSILON).
EPSILON = 1e-6

# vs, pg_advantages: [T, B], no gradient. log_rhos: [T, B] log(pi/mu), for
# diagnostics. target_action_log_probs: [T, B], the log-probability the
# policy gradient differentiates (log pi(a_t|x_t), or log(pi + EPSILON)).
CorrectedReturns = collections.namedtuple(
    'CorrectedReturns', 'vs pg_advantages log_rhos target_action_log_probs')


def check_variant(variant):
  """Raises ValueError naming the choices if `variant` is not one of them."""
  if variant not in VARIANTS:
    raise ValueError(f'Unknown off_policy_correction {variant!r}; choose one '
                     f'of {", ".join(VARIANTS)}.')


def corrected_returns(variant, behaviour_policy_logits, target_policy_logits,
                      actions, discounts, rewards, values, bootstrap_value):
  """Value targets and policy-gradient advantages under one correction.

  Args:
    variant: one of `VARIANTS`.
    behaviour_policy_logits: float32 [T, B, NUM_ACTIONS], the actor's.
    target_policy_logits: float32 [T, B, NUM_ACTIONS], the learner's.
    actions: int32 [T, B], taken by the behaviour policy.
    discounts: float32 [T, B], 0 where an episode ended.
    rewards: float32 [T, B].
    values: float32 [T, B], the learner's V(x_t).
    bootstrap_value: float32 [B], the learner's V(x_T).

  Returns:
    `CorrectedReturns`.
  """
  check_variant(variant)
  if variant == 'vtrace':
    returns = vtrace.from_logits(
        behaviour_policy_logits=behaviour_policy_logits,
        target_policy_logits=target_policy_logits,
        actions=actions, discounts=discounts, rewards=rewards,
        values=values, bootstrap_value=bootstrap_value)
    return CorrectedReturns(returns.vs, returns.pg_advantages,
                            returns.log_rhos, returns.target_action_log_probs)

  target_action_log_probs = vtrace.log_probs_from_logits_and_actions(
      target_policy_logits, actions)
  log_rhos = target_action_log_probs - vtrace.log_probs_from_logits_and_actions(
      behaviour_policy_logits, actions)
  # Every importance weight 1: vs_t is the n-step return and the advantage
  # r_t + gamma_t vs_{t+1} - V(x_t) = vs_t - V(x_t).
  on_policy = vtrace.from_importance_weights(
      log_rhos=tf.zeros_like(log_rhos), discounts=discounts, rewards=rewards,
      values=values, bootstrap_value=bootstrap_value)
  pg_advantages = on_policy.pg_advantages
  if variant == 'one_step':
    pg_advantages = tf.stop_gradient(tf.exp(log_rhos)) * pg_advantages
  elif variant == 'epsilon':
    action_probs = tf.exp(target_action_log_probs)
    target_action_log_probs = tf.math.log(action_probs + EPSILON)
  return CorrectedReturns(on_policy.vs, pg_advantages, log_rhos,
                          target_action_log_probs)
