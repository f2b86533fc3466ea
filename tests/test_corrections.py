"""Table 2's off-policy corrections against numpy written from section 5.2.1.

The ground truth here is the explicit sum of discounted rewards (not the
backward recursion the implementation uses), the importance weight computed
from softmax probabilities, and the gradient of each variant's policy loss
written out by hand.
"""

import numpy as np
import pytest
import tensorflow as tf

from scalable_agent import corrections
from scalable_agent import vtrace

T, B, A = 6, 3, 4


def _softmax(logits):
  z = np.exp(logits - logits.max(-1, keepdims=True))
  return z / z.sum(-1, keepdims=True)


def _batch(seed, spread):
  """A fixed batch; `spread` scales how far behaviour and target differ."""
  rng = np.random.default_rng(seed)
  behaviour = rng.normal(size=[T, B, A]) * spread
  target = rng.normal(size=[T, B, A]) * spread
  actions = rng.integers(0, A, size=[T, B])
  discounts = np.full([T, B], 0.9)
  discounts[2, 1] = 0.  # An episode ends inside the unroll.
  rewards = rng.normal(size=[T, B])
  values = rng.normal(size=[T, B])
  bootstrap = rng.normal(size=[B])
  return behaviour, target, actions, discounts, rewards, values, bootstrap


def _n_step_returns(discounts, rewards, bootstrap):
  """G_s = sum_{t=s}^{T-1} (prod_{i=s}^{t-1} gamma_i) r_t
           + (prod_{i=s}^{T-1} gamma_i) V(x_T), by explicit sums."""
  returns = np.zeros_like(rewards)
  for s in range(T):
    total = np.zeros([B])
    for t in range(s, T):
      total += np.prod(discounts[s:t], axis=0) * rewards[t]
    returns[s] = total + np.prod(discounts[s:], axis=0) * bootstrap
  return returns


def _pick(x, actions):
  return np.take_along_axis(x, actions[..., None], -1)[..., 0]


def _tf_returns(variant, batch):
  behaviour, target, actions, discounts, rewards, values, bootstrap = batch
  return corrections.corrected_returns(
      variant, tf.constant(behaviour, tf.float32),
      tf.constant(target, tf.float32), tf.constant(actions, tf.int32),
      tf.constant(discounts, tf.float32), tf.constant(rewards, tf.float32),
      tf.constant(values, tf.float32), tf.constant(bootstrap, tf.float32))


# spread 4: behaviour and target far apart (importance weights from ~1e-3
# to ~1e3), where the variants differ most.
@pytest.mark.parametrize('spread', [0.5, 4.0])
@pytest.mark.parametrize('variant', ['none', 'epsilon', 'one_step'])
def test_targets_and_advantages_match_the_definitions(variant, spread):
  batch = _batch(seed=int(spread * 10), spread=spread)
  behaviour, target, actions, discounts, rewards, values, bootstrap = batch
  returns = _n_step_returns(discounts, rewards, bootstrap)
  pi = _pick(_softmax(target), actions)
  mu = _pick(_softmax(behaviour), actions)
  # No correction when optimising V: the n-step return, on-policy style.
  expected_vs = returns
  expected_adv = returns - values
  if variant == 'one_step':
    expected_adv = (pi / mu) * (returns - values)  # Not truncated.
  expected_log_prob = (np.log(pi + 1e-6) if variant == 'epsilon'
                       else np.log(pi))

  got = _tf_returns(variant, batch)
  np.testing.assert_allclose(got.vs, expected_vs, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(got.pg_advantages, expected_adv, rtol=1e-4,
                             atol=1e-5)
  np.testing.assert_allclose(got.target_action_log_probs, expected_log_prob,
                             rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(got.log_rhos, np.log(pi / mu), rtol=1e-4,
                             atol=1e-4)
  if spread > 1 and variant == 'one_step':
    # The weights really are far from 1 here, in both directions.
    assert (pi / mu).max() > 10 and (pi / mu).min() < 0.1


def test_vtrace_variant_is_vtrace():
  batch = _batch(seed=3, spread=4.0)
  behaviour, target, actions, discounts, rewards, values, bootstrap = batch
  expected = vtrace.from_logits(behaviour, target, actions, discounts,
                                rewards, values, bootstrap)
  got = _tf_returns('vtrace', batch)
  np.testing.assert_allclose(got.vs, expected.vs, rtol=1e-6)
  np.testing.assert_allclose(got.pg_advantages, expected.pg_advantages,
                             rtol=1e-6)
  # ...and it differs from no correction where the policies differ.
  none = _tf_returns('none', batch)
  assert np.abs(got.vs.numpy() - none.vs.numpy()).max() > 0.1


@pytest.mark.parametrize('variant', ['none', 'epsilon', 'one_step'])
def test_policy_gradient_wrt_target_logits(variant):
  # The loss the learner minimises: -sum log_prob * advantage. Its gradient
  # with respect to the target logits, by hand:
  #   d/dz [-adv log p_a]        = -adv (onehot_a - p)
  #   d/dz [-adv log(p_a + eps)] = -adv p_a (onehot_a - p) / (p_a + eps)
  batch = _batch(seed=7, spread=6.0)  # Some p_a are tiny: eps matters.
  behaviour, target, actions, discounts, rewards, values, bootstrap = batch
  target_t = tf.Variable(target, dtype=tf.float32)
  with tf.GradientTape() as tape:
    got = corrections.corrected_returns(
        variant, tf.constant(behaviour, tf.float32), target_t,
        tf.constant(actions, tf.int32), tf.constant(discounts, tf.float32),
        tf.constant(rewards, tf.float32), tf.constant(values, tf.float32),
        tf.constant(bootstrap, tf.float32))
    loss = -tf.reduce_sum(got.target_action_log_probs * got.pg_advantages)
  gradient = tape.gradient(loss, target_t).numpy()

  p = _softmax(target)
  p_a = _pick(p, actions)
  advantages = got.pg_advantages.numpy().astype(np.float64)
  direction = np.eye(A)[actions] - p
  scale = p_a / (p_a + 1e-6) if variant == 'epsilon' else 1.
  expected = -(advantages * scale)[..., None] * direction
  np.testing.assert_allclose(gradient, expected, rtol=1e-3, atol=1e-6)
  if variant == 'epsilon':
    # Where pi(a) is near epsilon, the epsilon variant's gradient is
    # visibly smaller than the uncorrected one.
    assert (p_a < 1e-5).any()


def test_unknown_variant_is_refused():
  with pytest.raises(ValueError, match='choose one of vtrace, one_step'):
    _tf_returns('retrace', _batch(0, 1.))
