"""Tests for scalable_agent.vtrace against a slow numpy ground truth.

The ground truth is written directly from the paper's definition of the
V-trace target (the explicit double sum), not from the backward recursion the
implementation uses, so the two are independent.
"""

import numpy as np
import pytest
import tensorflow as tf

from scalable_agent import vtrace

RTOL = 1e-5
ATOL = 1e-5


def _ground_truth(log_rhos, discounts, rewards, values, bootstrap_value,
                  clip_rho_threshold, clip_pg_rho_threshold):
  """V-trace from the paper's definition, in float64, deliberately slow.

  v_s = V(x_s) + sum_{t=s}^{T-1} (prod_{i=s}^{t-1} gamma_i)
                                 (prod_{i=s}^{t-1} c_i) delta_t
  delta_t = rho_t (r_t + gamma_t V(x_{t+1}) - V(x_t)),  V(x_T) = bootstrap.
  With per-step discounts the paper's gamma^{t-s} becomes the product of the
  discounts gamma_s .. gamma_{t-1}. np.prod of an empty slice is 1.
  """
  log_rhos, discounts, rewards, values, bootstrap_value = (
      np.asarray(x, np.float64)
      for x in (log_rhos, discounts, rewards, values, bootstrap_value))
  seq_len = log_rhos.shape[0]
  rhos = np.exp(log_rhos)
  cs = np.minimum(rhos, 1.0)
  clipped_rhos = (rhos if clip_rho_threshold is None
                  else np.minimum(rhos, clip_rho_threshold))
  clipped_pg_rhos = (rhos if clip_pg_rho_threshold is None
                     else np.minimum(rhos, clip_pg_rho_threshold))
  values_ext = np.concatenate([values, bootstrap_value[None]], axis=0)

  vs = np.zeros_like(values)
  for s in range(seq_len):
    v_s = values[s].copy()
    for t in range(s, seq_len):
      delta_t = clipped_rhos[t] * (
          rewards[t] + discounts[t] * values_ext[t + 1] - values[t])
      v_s += (np.prod(discounts[s:t], axis=0) * np.prod(cs[s:t], axis=0) *
              delta_t)
    vs[s] = v_s

  vs_ext = np.concatenate([vs, bootstrap_value[None]], axis=0)
  pg_advantages = np.zeros_like(values)
  for s in range(seq_len):
    pg_advantages[s] = clipped_pg_rhos[s] * (
        rewards[s] + discounts[s] * vs_ext[s + 1] - values[s])
  return vs, pg_advantages


def _log_softmax_gather(logits, actions):
  logits = np.asarray(logits, np.float64)
  shifted = logits - logits.max(axis=-1, keepdims=True)
  log_softmax = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
  return np.take_along_axis(log_softmax, actions[..., None], axis=-1)[..., 0]


def _random_inputs(rng, seq_len, batch_shape, zero_discounts=True):
  """Random float32 inputs; some discounts are 0 (episode ends mid-unroll)."""
  shape = (seq_len,) + tuple(batch_shape)
  log_rhos = rng.uniform(-2.5, 2.5, shape).astype(np.float32)
  discounts = np.full(shape, 0.9, np.float32)
  if zero_discounts:
    discounts[rng.uniform(size=shape) < 0.15] = 0.0
  rewards = rng.normal(size=shape).astype(np.float32)
  values = rng.normal(size=shape).astype(np.float32)
  bootstrap_value = rng.normal(size=batch_shape).astype(np.float32)
  return dict(log_rhos=log_rhos, discounts=discounts, rewards=rewards,
              values=values, bootstrap_value=bootstrap_value)


@pytest.mark.parametrize('clip_rho_threshold', [None, 1.0, 3.7, 0.5])
@pytest.mark.parametrize('clip_pg_rho_threshold', [None, 1.0, 2.2])
@pytest.mark.parametrize('seq_len,batch_shape', [(1, (3,)), (7, (4,)),
                                                 (12, (5, 2))])
def test_from_importance_weights(clip_rho_threshold, clip_pg_rho_threshold,
                                 seq_len, batch_shape):
  rng = np.random.default_rng([seq_len] + list(batch_shape))
  inputs = _random_inputs(rng, seq_len, batch_shape)
  out = vtrace.from_importance_weights(
      clip_rho_threshold=clip_rho_threshold,
      clip_pg_rho_threshold=clip_pg_rho_threshold, **inputs)
  assert isinstance(out, vtrace.VTraceReturns)
  vs, pg_advantages = _ground_truth(
      clip_rho_threshold=clip_rho_threshold,
      clip_pg_rho_threshold=clip_pg_rho_threshold, **inputs)
  assert out.vs.dtype == tf.float32
  assert out.vs.shape == inputs['values'].shape
  assert out.pg_advantages.shape == inputs['values'].shape
  np.testing.assert_allclose(out.vs.numpy(), vs, rtol=RTOL, atol=ATOL)
  np.testing.assert_allclose(out.pg_advantages.numpy(), pg_advantages,
                             rtol=RTOL, atol=ATOL)


def test_clip_thresholds_matter():
  # Guards against the ground truth and implementation both ignoring a clip:
  # with large log_rhos, each threshold must change its own output only.
  rng = np.random.default_rng(1)
  inputs = _random_inputs(rng, 6, (4,))
  inputs['log_rhos'] = np.full_like(inputs['log_rhos'], 1.5)  # rho ~ 4.5
  base = vtrace.from_importance_weights(
      clip_rho_threshold=None, clip_pg_rho_threshold=None, **inputs)
  rho_clipped = vtrace.from_importance_weights(
      clip_rho_threshold=1.0, clip_pg_rho_threshold=None, **inputs)
  pg_clipped = vtrace.from_importance_weights(
      clip_rho_threshold=None, clip_pg_rho_threshold=1.0, **inputs)
  assert not np.allclose(base.vs, rho_clipped.vs)
  np.testing.assert_array_equal(base.vs, pg_clipped.vs)
  assert not np.allclose(base.pg_advantages, pg_clipped.pg_advantages)


def test_on_policy_is_n_step_return():
  # With pi == mu (log_rhos = 0) V-trace reduces to the discounted n-step
  # bootstrapped return, independent of the values (paper, section 4.1).
  seq_len, batch = 5, 3
  rng = np.random.default_rng(2)
  rewards = rng.normal(size=(seq_len, batch)).astype(np.float32)
  values = rng.normal(size=(seq_len, batch)).astype(np.float32)
  bootstrap_value = rng.normal(size=(batch,)).astype(np.float32)
  gamma = 0.9
  discounts = np.full((seq_len, batch), gamma, np.float32)
  out = vtrace.from_importance_weights(
      log_rhos=np.zeros((seq_len, batch), np.float32), discounts=discounts,
      rewards=rewards, values=values, bootstrap_value=bootstrap_value)
  expected = np.zeros((seq_len, batch))
  for s in range(seq_len):
    expected[s] = sum(gamma**(t - s) * rewards[t] for t in range(s, seq_len))
    expected[s] += gamma**(seq_len - s) * bootstrap_value
  np.testing.assert_allclose(out.vs.numpy(), expected, rtol=RTOL, atol=ATOL)


def test_zero_discount_cuts_the_trace():
  # An episode end at step k (discount 0) makes v_0 .. v_k independent of
  # anything after step k, including the bootstrap value.
  rng = np.random.default_rng(3)
  inputs = _random_inputs(rng, 8, (4,), zero_discounts=False)
  k = 3
  inputs['discounts'][k] = 0.0
  out = vtrace.from_importance_weights(**inputs)
  changed = {key: value.copy() for key, value in inputs.items()}
  changed['rewards'][k + 1:] += 10.0
  changed['values'][k + 1:] -= 5.0
  changed['log_rhos'][k + 1:] += 1.0
  changed['bootstrap_value'] += 7.0
  out_changed = vtrace.from_importance_weights(**changed)
  np.testing.assert_allclose(out.vs[:k + 1], out_changed.vs[:k + 1],
                             rtol=RTOL, atol=ATOL)
  np.testing.assert_allclose(out.pg_advantages[:k + 1],
                             out_changed.pg_advantages[:k + 1],
                             rtol=RTOL, atol=ATOL)
  vs, pg_advantages = _ground_truth(
      clip_rho_threshold=1.0, clip_pg_rho_threshold=1.0, **inputs)
  np.testing.assert_allclose(out.vs, vs, rtol=RTOL, atol=ATOL)
  np.testing.assert_allclose(out.pg_advantages, pg_advantages, rtol=RTOL,
                             atol=ATOL)


@pytest.mark.parametrize('batch_shape', [(3,), (3, 2)])
def test_log_probs_from_logits_and_actions(batch_shape):
  seq_len, num_actions = 7, 5
  rng = np.random.default_rng(4)
  logits = rng.normal(
      scale=3.0,
      size=(seq_len,) + batch_shape + (num_actions,)).astype(np.float32)
  actions = rng.integers(0, num_actions, (seq_len,) + batch_shape)
  for dtype in (np.int32, np.int64):
    log_probs = vtrace.log_probs_from_logits_and_actions(
        logits, actions.astype(dtype))
    assert log_probs.dtype == tf.float32
    assert log_probs.shape == (seq_len,) + batch_shape
    np.testing.assert_allclose(log_probs.numpy(),
                               _log_softmax_gather(logits, actions),
                               rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize('clip_rho_threshold,clip_pg_rho_threshold',
                         [(1.0, 1.0), (None, None), (3.7, 2.2)])
def test_from_logits(clip_rho_threshold, clip_pg_rho_threshold):
  seq_len, batch, num_actions = 9, 4, 6
  rng = np.random.default_rng(5)
  behaviour_logits = rng.normal(
      size=(seq_len, batch, num_actions)).astype(np.float32)
  target_logits = rng.normal(
      size=(seq_len, batch, num_actions)).astype(np.float32)
  actions = rng.integers(0, num_actions, (seq_len, batch)).astype(np.int32)
  inputs = _random_inputs(rng, seq_len, (batch,))
  del inputs['log_rhos']

  out = vtrace.from_logits(
      behaviour_policy_logits=behaviour_logits,
      target_policy_logits=target_logits, actions=actions,
      clip_rho_threshold=clip_rho_threshold,
      clip_pg_rho_threshold=clip_pg_rho_threshold, **inputs)
  assert isinstance(out, vtrace.VTraceFromLogitsReturns)

  behaviour_log_probs = _log_softmax_gather(behaviour_logits, actions)
  target_log_probs = _log_softmax_gather(target_logits, actions)
  log_rhos = target_log_probs - behaviour_log_probs
  np.testing.assert_allclose(out.behaviour_action_log_probs,
                             behaviour_log_probs, rtol=RTOL, atol=ATOL)
  np.testing.assert_allclose(out.target_action_log_probs, target_log_probs,
                             rtol=RTOL, atol=ATOL)
  np.testing.assert_allclose(out.log_rhos, log_rhos, rtol=RTOL, atol=ATOL)

  vs, pg_advantages = _ground_truth(
      log_rhos=log_rhos, clip_rho_threshold=clip_rho_threshold,
      clip_pg_rho_threshold=clip_pg_rho_threshold, **inputs)
  np.testing.assert_allclose(out.vs, vs, rtol=RTOL, atol=ATOL)
  np.testing.assert_allclose(out.pg_advantages, pg_advantages, rtol=RTOL,
                             atol=ATOL)


def test_rank_mismatch_raises():
  seq_len, batch = 5, 3
  values = tf.zeros([seq_len, batch, 2])
  good = dict(log_rhos=tf.zeros([seq_len, batch, 2]),
              discounts=tf.zeros([seq_len, batch, 2]),
              rewards=tf.zeros([seq_len, batch, 2]), values=values,
              bootstrap_value=tf.zeros([batch, 2]))
  vtrace.from_importance_weights(**good)  # Sanity: the good ones pass.
  with pytest.raises(ValueError):
    vtrace.from_importance_weights(
        **dict(good, bootstrap_value=tf.zeros([batch])))
  with pytest.raises(ValueError):
    vtrace.from_importance_weights(**dict(good, rewards=tf.zeros([seq_len])))
  with pytest.raises(ValueError):
    vtrace.from_importance_weights(
        **dict(good, clip_rho_threshold=tf.ones([2])))
  with pytest.raises(ValueError):
    vtrace.log_probs_from_logits_and_actions(
        tf.zeros([seq_len, batch, 4]), tf.zeros([seq_len, batch, 2], tf.int32))
  with pytest.raises(ValueError):
    vtrace.from_logits(
        behaviour_policy_logits=tf.zeros([seq_len, batch, 4]),
        target_policy_logits=tf.zeros([seq_len, batch, 4]),
        actions=tf.zeros([seq_len, batch], tf.int32),
        discounts=tf.zeros([seq_len, batch]),
        rewards=tf.zeros([seq_len, batch]),
        values=tf.zeros([seq_len, batch]),
        bootstrap_value=tf.zeros([]))


def test_no_gradient_through_targets():
  rng = np.random.default_rng(6)
  seq_len, batch, num_actions = 4, 3, 5
  inputs = {key: tf.Variable(value)
            for key, value in _random_inputs(rng, seq_len, (batch,)).items()}
  with tf.GradientTape(persistent=True) as tape:
    out = vtrace.from_importance_weights(**inputs)
  for output in (out.vs, out.pg_advantages):
    for name in ('log_rhos', 'values', 'rewards', 'bootstrap_value'):
      grad = tape.gradient(output, inputs[name])
      assert grad is None or not np.any(grad.numpy()), name

  target_logits = tf.Variable(rng.normal(
      size=(seq_len, batch, num_actions)).astype(np.float32))
  with tf.GradientTape(persistent=True) as tape:
    out = vtrace.from_logits(
        behaviour_policy_logits=tf.zeros([seq_len, batch, num_actions]),
        target_policy_logits=target_logits,
        actions=tf.zeros([seq_len, batch], tf.int32),
        discounts=inputs['discounts'], rewards=inputs['rewards'],
        values=inputs['values'], bootstrap_value=inputs['bootstrap_value'])
    pg_loss = -tf.reduce_sum(out.target_action_log_probs * out.pg_advantages)
  for output in (out.vs, out.pg_advantages):
    for variable in (target_logits, inputs['values']):
      grad = tape.gradient(output, variable)
      assert grad is None or not np.any(grad.numpy())
  # The log-probs themselves do carry gradient (the policy loss needs it).
  grad = tape.gradient(pg_loss, target_logits)
  assert grad is not None and np.any(grad.numpy())


def test_tf_function_matches_eager():
  rng = np.random.default_rng(7)
  seq_len, batch, num_actions = 6, 4, 3
  inputs = _random_inputs(rng, seq_len, (batch,))
  del inputs['log_rhos']
  behaviour_logits = rng.normal(
      size=(seq_len, batch, num_actions)).astype(np.float32)
  target_logits = rng.normal(
      size=(seq_len, batch, num_actions)).astype(np.float32)
  actions = rng.integers(0, num_actions, (seq_len, batch)).astype(np.int32)
  args = (behaviour_logits, target_logits, actions, inputs['discounts'],
          inputs['rewards'], inputs['values'], inputs['bootstrap_value'])

  eager = vtrace.from_logits(*args, clip_rho_threshold=3.7)
  # Unknown T and B in the signature: the scan must not need static shapes.
  spec = [tf.TensorSpec([None, None, num_actions], tf.float32)] * 2 + [
      tf.TensorSpec([None, None], tf.int32)] + [
          tf.TensorSpec([None, None], tf.float32)] * 3 + [
              tf.TensorSpec([None], tf.float32)]
  graph_fn = tf.function(
      lambda *a: vtrace.from_logits(*a, clip_rho_threshold=3.7),
      input_signature=spec)
  graph = graph_fn(*args)
  for field in vtrace.VTraceFromLogitsReturns._fields:
    np.testing.assert_allclose(getattr(graph, field), getattr(eager, field),
                               rtol=RTOL, atol=ATOL, err_msg=field)
