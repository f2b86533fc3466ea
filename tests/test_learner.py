"""Tests of the loss, the optimiser and one learner step."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import sonnet as snt
import tensorflow as tf

from scalable_agent import environments
from scalable_agent import learner as learner_lib
from scalable_agent import networks
from scalable_agent import optimizers

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def random_batch(specs, batch_size, num_actions, seed):
  """A batch-major `Unroll` batch of random but well-formed values."""
  rng = np.random.default_rng(seed)

  def fill(spec):
    shape = [batch_size] + spec.shape.as_list()
    if spec.dtype == tf.bool:
      return tf.constant(rng.random(shape) < 0.1)
    if spec.dtype == tf.uint8:
      return tf.constant(rng.integers(0, 256, shape), tf.uint8)
    if spec.dtype.is_integer:
      return tf.constant(rng.integers(0, num_actions, shape), spec.dtype)
    return tf.constant(rng.normal(size=shape), spec.dtype)

  return tf.nest.map_structure(fill, specs)


def mlp_learner(hparams, strategy=None, observation_size=4, num_actions=3):
  agent = networks.ImpalaAgent(num_actions, networks.MLPTorso(),
                               use_lstm=False)
  specs = learner_lib.unroll_specs(
      agent, tf.TensorSpec([observation_size], tf.float32),
      hparams.unroll_length)
  return learner_lib.Learner(agent, specs, hparams, strategy), specs


# ----------------------------------------------------------------------------
# Reward clipping and the learning-rate schedule.


def test_clip_rewards_abs_one():
  r = tf.constant([-7., -1., -0.3, 0., 0.5, 1., 12.])
  np.testing.assert_allclose(learner_lib.clip_rewards(r, 'abs_one'),
                             [-1, -1, -0.3, 0, 0.5, 1, 1])


def test_clip_rewards_soft_asymmetric_uses_the_released_constants():
  r = np.array([-50., -2., -0.1, 0., 0.1, 2., 50.], np.float32)
  expected = np.where(r > 0, 5 * np.tanh(r / 5), 1.5 * np.tanh(r / 5))
  np.testing.assert_allclose(
      learner_lib.clip_rewards(tf.constant(r), 'soft_asymmetric'), expected,
      rtol=1e-6)


def test_clip_rewards_unknown_mode():
  with pytest.raises(ValueError, match='soft_asymmetric'):
    learner_lib.clip_rewards(tf.constant([1.]), 'clip_all')


def test_learning_rate_anneals_linearly_to_zero():
  lr = lambda f: float(optimizers.linear_learning_rate(0.0006, f, 1000))
  assert lr(0) == pytest.approx(0.0006)
  assert lr(250) == pytest.approx(0.00045)
  assert lr(1000) == 0
  assert lr(5000) == 0


# ----------------------------------------------------------------------------
# RMSProp: parity with TF1's optimiser.


@pytest.mark.parametrize('momentum, epsilon', [(0., 0.1), (0.9, 0.01)])
def test_rmsprop_matches_tf1_rmsprop_optimizer(momentum, epsilon):
  rng = np.random.default_rng(0)
  init = [rng.normal(size=[3, 4]).astype(np.float32),
          rng.normal(size=[5]).astype(np.float32)]
  ours = [tf.Variable(x) for x in init]
  theirs = [tf.Variable(x) for x in init]
  optimizer = optimizers.RMSProp(ours, decay=0.99, momentum=momentum,
                                  epsilon=epsilon)
  reference = tf.compat.v1.train.RMSPropOptimizer(
      learning_rate=0.01, decay=0.99, momentum=momentum, epsilon=epsilon)
  for _ in range(6):
    gradients = [tf.constant(rng.normal(size=x.shape) * 3, tf.float32)
                 for x in init]
    optimizer.apply(gradients, ours, learning_rate=0.01)
    reference.apply_gradients(zip(gradients, theirs))
  for a, b in zip(ours, theirs):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
  # And it is not Keras' RMSprop (zeros accumulator, epsilon outside sqrt).
  keras_vars = [tf.Variable(x) for x in init]
  keras = tf.keras.optimizers.RMSprop(0.01, rho=0.99, momentum=momentum,
                                      epsilon=epsilon)
  keras.apply_gradients(zip(gradients, keras_vars))
  one_step = [tf.Variable(x) for x in init]
  optimizers.RMSProp(one_step, 0.99, momentum, epsilon).apply(
      gradients, one_step, 0.01)
  assert not np.allclose(keras_vars[0].numpy(), one_step[0].numpy(),
                         rtol=1e-3)


def test_adam_matches_the_papers_algorithm_in_numpy():
  """Kingma and Ba (2015), Algorithm 1 with the epsilon-hat of section 2,
  written out in numpy; learning rates change between steps (the schedule)."""
  rng = np.random.default_rng(1)
  init = [rng.normal(size=[3, 4]), rng.normal(size=[5])]
  ours = [tf.Variable(x.astype(np.float32)) for x in init]
  hparams = learner_lib.Hyperparameters(optimizer='adam', epsilon=1e-3)
  optimizer = optimizers.make_optimizer(ours, hparams)
  expected = [x.copy() for x in init]
  m = [np.zeros_like(x) for x in init]
  v = [np.zeros_like(x) for x in init]
  for t in range(1, 8):
    rate = 0.01 * (1 - t / 10)
    gradients = [rng.normal(size=x.shape) * 10 ** rng.uniform(-3, 1)
                 for x in init]
    optimizer.apply([tf.constant(g, tf.float32) for g in gradients], ours,
                    tf.constant(rate, tf.float32))
    for i, g in enumerate(gradients):
      m[i] = 0.9 * m[i] + 0.1 * g
      v[i] = 0.999 * v[i] + 0.001 * g * g
      step = rate * np.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
      expected[i] -= step * m[i] / (np.sqrt(v[i]) + 1e-3)
  for a, b in zip(ours, expected):
    np.testing.assert_allclose(a.numpy(), b, rtol=1e-4, atol=1e-6)
  with pytest.raises(ValueError, match='Unknown optimizer'):
    optimizers.make_optimizer(ours, learner_lib.Hyperparameters(
        optimizer='sgd'))


# ----------------------------------------------------------------------------
# The loss against a numpy implementation.


class FixedOutputsAgent:
  """An 'agent' whose unroll returns given logits and baselines."""

  def __init__(self, logits, baselines):
    self._logits = tf.constant(logits, tf.float32)
    self._baselines = tf.constant(baselines, tf.float32)

  def unroll(self, prev_actions, env_outputs, core_state):
    del prev_actions, env_outputs
    return networks.AgentOutput(tf.zeros_like(self._baselines, tf.int32),
                                self._logits, self._baselines), core_state


def _numpy_log_softmax(logits):
  z = logits - logits.max(-1, keepdims=True)
  return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _numpy_loss(learner_logits, learner_baselines, behaviour_logits, actions,
                rewards, done, hp):
  """The IMPALA loss from the paper, in numpy: [T+1, B] inputs, reference
  layout (see learner.py)."""
  T = rewards.shape[0] - 1
  bootstrap = learner_baselines[-1]
  values = learner_baselines[:-1]
  target_lp = _numpy_log_softmax(learner_logits[:-1])
  behaviour_lp = _numpy_log_softmax(behaviour_logits[1:])
  a = actions[1:]
  take = lambda lp: np.take_along_axis(lp, a[..., None], -1)[..., 0]
  rhos = np.exp(take(target_lp) - take(behaviour_lp))
  clipped_rhos = np.minimum(1., rhos)
  cs = np.minimum(1., rhos)
  r = np.clip(rewards[1:], -1, 1)
  discounts = hp.discounting * (1. - done[1:])
  next_values = np.concatenate([values[1:], bootstrap[None]])
  deltas = clipped_rhos * (r + discounts * next_values - values)
  vs_minus_v = np.zeros_like(values)
  acc = np.zeros_like(bootstrap)
  for t in reversed(range(T)):
    acc = deltas[t] + discounts[t] * cs[t] * acc
    vs_minus_v[t] = acc
  vs = values + vs_minus_v
  vs_next = np.concatenate([vs[1:], bootstrap[None]])
  pg_adv = clipped_rhos * (r + discounts * vs_next - values)
  pg_loss = np.sum(-take(target_lp) * pg_adv)
  baseline_loss = 0.5 * np.sum((vs - values) ** 2)
  probs = np.exp(target_lp)
  entropy = -np.sum(probs * target_lp)
  total = pg_loss + hp.baseline_cost * baseline_loss - hp.entropy_cost * entropy
  return dict(total=total, pg_loss=pg_loss, baseline_loss=baseline_loss,
              entropy=entropy, vs=vs, values=values, pg_adv=pg_adv, rhos=rhos,
              target_lp=target_lp, behaviour_lp=behaviour_lp, actions=a)


def test_compute_loss_matches_numpy():
  rng = np.random.default_rng(3)
  T1, B, A = 7, 4, 5
  hp = learner_lib.Hyperparameters(entropy_cost=0.01, baseline_cost=0.5)
  learner_logits = rng.normal(size=[T1, B, A]).astype(np.float32)
  learner_baselines = rng.normal(size=[T1, B]).astype(np.float32)
  behaviour_logits = rng.normal(size=[T1, B, A]).astype(np.float32)
  actions = rng.integers(0, A, [T1, B]).astype(np.int32)
  rewards = (rng.normal(size=[T1, B]) * 2).astype(np.float32)
  done = rng.random([T1, B]) < 0.2
  batch = learner_lib.Unroll(
      level_id=tf.zeros([B], tf.int32), policy_version=tf.zeros([B], tf.int64),
      agent_state=(),
      env_outputs=environments.EnvOutput(
          tf.constant(rewards), None, tf.constant(done), None),
      agent_outputs=networks.AgentOutput(
          tf.constant(actions), tf.constant(behaviour_logits),
          tf.zeros([T1, B])))
  total, terms = learner_lib.compute_loss(
      FixedOutputsAgent(learner_logits, learner_baselines), batch, hp)
  expected = _numpy_loss(learner_logits.astype(np.float64),
                         learner_baselines.astype(np.float64),
                         behaviour_logits.astype(np.float64), actions,
                         rewards.astype(np.float64), done.astype(np.float64),
                         hp)
  np.testing.assert_allclose(
      [total, terms['policy_gradient_loss'], terms['baseline_loss'],
       terms['entropy']],
      [expected[k] for k in ('total', 'pg_loss', 'baseline_loss', 'entropy')],
      rtol=1e-4)

  # The diagnostics, each from its definition.
  diagnostics = learner_lib.diagnostics_from_sums(terms)
  vs, values = expected['vs'], expected['values']
  behaviour_lp, target_lp = expected['behaviour_lp'], expected['target_lp']
  num_steps = (T1 - 1) * B
  want = {
      'entropy_per_step': expected['entropy'] / num_steps,
      'explained_variance': 1 - np.var(vs - values) / np.var(vs),
      'mean_abs_advantage': np.mean(np.abs(expected['pg_adv'])),
      'rho_clipped_fraction': np.mean(expected['rhos'] > 1),
      'c_clipped_fraction': np.mean(expected['rhos'] > 1),
      'behaviour_kl': np.mean(np.sum(
          np.exp(behaviour_lp) * (behaviour_lp - target_lp), -1)),
  }
  assert set(diagnostics) == set(want)
  assert 0 < want['rho_clipped_fraction'] < 1  # The batch tests both sides.
  for name, value in want.items():
    np.testing.assert_allclose(diagnostics[name], value, rtol=1e-4,
                               atol=1e-6, err_msg=name)


# ----------------------------------------------------------------------------
# One learner step.


HP = learner_lib.Hyperparameters(
    batch_size=4, unroll_length=5, entropy_cost=0.01, learning_rate=0.01,
    total_environment_frames=1e6, epsilon=0.01)


def _copy_variables(source, target):
  for s, t in zip(source.agent.trainable_variables,
                  target.agent.trainable_variables):
    t.assign(s)


def test_step_lowers_the_loss_on_a_fixed_batch():
  learner, specs = mlp_learner(HP)
  batch = random_batch(specs, HP.batch_size, 3, seed=0)
  losses = [float(learner.step(batch).total_loss) for _ in range(30)]
  assert losses[-1] < losses[0] - 0.1 * abs(losses[0])
  # Frames counted: 30 steps * B * T * action repeats.
  assert int(learner.num_env_frames) == 30 * 4 * 5 * 4


def test_a_non_finite_batch_skips_the_update_and_is_counted():
  # Issue 10, defect 1: one NaN reward made every parameter NaN.
  learner, specs = mlp_learner(HP)
  batch = random_batch(specs, HP.batch_size, 3, seed=0)
  learner.step(batch)
  before = [v.numpy() for v in learner.agent.trainable_variables]
  rewards = batch.env_outputs.reward.numpy()
  rewards[1, 2] = np.nan
  poisoned = batch._replace(env_outputs=batch.env_outputs._replace(
      reward=tf.constant(rewards)))
  stats = learner.step(poisoned)
  assert not np.isfinite(float(stats.total_loss))
  assert int(stats.skipped_steps) == 1
  for old, new in zip(before, learner.agent.trainable_variables):
    np.testing.assert_array_equal(old, new.numpy())
  assert int(learner.num_env_frames) == 2 * HP.frames_per_step
  # The next good batch trains as usual.
  stats = learner.step(batch)
  assert int(stats.skipped_steps) == 1
  assert any(not np.array_equal(old, new.numpy()) for old, new in
             zip(before, learner.agent.trainable_variables))


def test_eager_and_tf_function_steps_agree():
  compiled, specs = mlp_learner(HP)
  eager, _ = mlp_learner(HP)
  _copy_variables(compiled, eager)
  batch = random_batch(specs, HP.batch_size, 3, seed=1)
  for _ in range(3):
    stats_c = compiled.step(batch, compiled=True)
    stats_e = eager.step(batch, compiled=False)
    np.testing.assert_allclose(stats_c.total_loss, stats_e.total_loss,
                               rtol=1e-5)
  for a, b in zip(compiled.agent.trainable_variables,
                  eager.agent.trainable_variables):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


class _Identity(snt.Module):
  """A torso that passes a vector observation through, so the agent is a
  linear policy and a linear baseline whose gradients numpy can write."""

  def __call__(self, observation):
    return tf.cast(observation, tf.float32)


def test_gradient_norms_by_term_and_clip_factor_match_numpy():
  hp = learner_lib.Hyperparameters(
      batch_size=3, unroll_length=6, entropy_cost=0.05, baseline_cost=0.5,
      learning_rate=0.01, epsilon=0.01, max_gradient_norm=0.3)
  num_actions, dim = 4, 5
  agent = networks.ImpalaAgent(num_actions, _Identity(), use_lstm=False)
  specs = learner_lib.unroll_specs(
      agent, tf.TensorSpec([dim], tf.float32), hp.unroll_length)
  learner = learner_lib.Learner(agent, specs, hp)
  batch = random_batch(specs, hp.batch_size, num_actions, seed=7)
  # Time-major numpy inputs: x [T+1, B, D], actions, rewards, done, mu.
  tm = learner_lib.to_time_major(batch)
  x = tm.env_outputs.observation.numpy().astype(np.float64)
  w_pi, b_pi = [v.numpy().astype(np.float64)
                for v in agent._policy_logits.trainable_variables[::-1]]
  w_v, b_v = [v.numpy().astype(np.float64)
              for v in agent._baseline.trainable_variables[::-1]]
  assert w_pi.shape == (dim, num_actions) and w_v.shape == (dim, 1)
  logits = x @ w_pi + b_pi
  baselines = (x @ w_v + b_v)[..., 0]
  f64 = lambda t: t.numpy().astype(np.float64)
  np_loss = _numpy_loss(logits, baselines, f64(tm.agent_outputs.policy_logits),
                        tm.agent_outputs.action.numpy(),
                        f64(tm.env_outputs.reward), f64(tm.env_outputs.done),
                        hp)
  x_t = x[:-1]  # The observations whose outputs enter the loss.
  probs = np.exp(np_loss['target_lp'])
  one_hot = np.eye(num_actions)[np_loss['actions']]
  # d/dlogits of sum(-log pi(a) * adv), of -c * H and d/dV of
  # b * 0.5 * sum (vs - V)^2 (vs and the advantages are constants).
  d_pg = np_loss['pg_adv'][..., None] * (probs - one_hot)
  entropy_rows = -np.sum(probs * np_loss['target_lp'], -1, keepdims=True)
  d_entropy = hp.entropy_cost * probs * (np_loss['target_lp'] + entropy_rows)
  d_value = -hp.baseline_cost * (np_loss['vs'] - np_loss['values'])

  def head_norm(d_out):  # Global norm of a linear head's (W, b) gradient.
    d_w = np.einsum('tbd,tba->da', x_t, d_out)
    d_b = d_out.sum((0, 1))
    return np.sqrt((d_w ** 2).sum() + (d_b ** 2).sum())

  want = learner_lib.TermGradientNorms(
      policy_gradient=head_norm(d_pg), baseline=head_norm(d_value[..., None]),
      entropy=head_norm(d_entropy))
  norms = learner.gradient_norms_by_term(batch)
  np.testing.assert_allclose(norms, want, rtol=1e-4)

  total_norm = head_norm(d_pg + d_entropy) ** 2 + head_norm(
      d_value[..., None]) ** 2
  total_norm = np.sqrt(total_norm)
  assert total_norm > hp.max_gradient_norm  # So clipping is active.
  stats = learner.step(batch)
  np.testing.assert_allclose(stats.gradient_norm, total_norm, rtol=1e-4)
  np.testing.assert_allclose(stats.clip_factor,
                             hp.max_gradient_norm / total_norm, rtol=1e-4)
  # The step reports the same diagnostics as the loss's sums give.
  np.testing.assert_allclose(
      stats.entropy_per_step,
      np_loss['entropy'] / (hp.unroll_length * hp.batch_size), rtol=1e-4)


def test_step_applies_tf1_rmsprop_with_annealed_rate_and_clipping():
  hp = learner_lib.Hyperparameters(
      batch_size=4, unroll_length=5, learning_rate=0.01, epsilon=0.01,
      total_environment_frames=400, max_gradient_norm=0.5)
  learner, specs = mlp_learner(hp)
  batch = random_batch(specs, hp.batch_size, 3, seed=2)
  variables = learner.agent.trainable_variables
  before = [v.numpy() for v in variables]
  # The gradient of the same batch, computed independently.
  with tf.GradientTape() as tape:
    loss, _ = learner_lib.compute_loss(
        learner.agent, learner_lib.to_time_major(batch), hp)
  grads = [g.numpy() for g in tape.gradient(loss, variables)]
  norm = np.sqrt(sum((g ** 2).sum() for g in grads))
  assert norm > 0.5  # So clipping is active.
  learner.num_env_frames.assign(100)  # lr = 0.01 * (1 - 100/400).
  stats = learner.step(batch)
  assert float(stats.learning_rate) == pytest.approx(0.0075)
  assert float(stats.gradient_norm) == pytest.approx(norm, rel=1e-4)
  for b, g, v in zip(before, grads, variables):
    g = g * 0.5 / norm
    ms = 0.99 + 0.01 * g ** 2
    np.testing.assert_allclose(v.numpy(), b - 0.0075 * g / np.sqrt(ms + 0.01),
                               rtol=1e-4, atol=1e-7)


def test_tunable_hyperparameters_change_the_step_without_retracing():
  # Population-based training assigns new values during a run: the next
  # step must use them (the same TF1 RMSProp arithmetic, with the new
  # rate, epsilon and clipping) without tracing the step again.
  hp = learner_lib.Hyperparameters(
      batch_size=4, unroll_length=5, learning_rate=0.01, epsilon=0.01,
      total_environment_frames=1e9, max_gradient_norm=0.)
  learner, specs = mlp_learner(hp)
  batch = random_batch(specs, hp.batch_size, 3, seed=3)
  learner.step(batch)
  traces = learner._compiled_step.experimental_get_tracing_count()  # pylint: disable=protected-access
  learner.tunable.assign(learning_rate=0.002, epsilon=0.1,
                         max_gradient_norm=0.25, entropy_cost=0.5)
  variables = learner.agent.trainable_variables
  before = [v.numpy() for v in variables]
  mean_squares = [m.numpy() for m in learner.optimizer.mean_squares]
  with tf.GradientTape() as tape:
    loss, _ = learner_lib.compute_loss(
        learner.agent, learner_lib.to_time_major(batch), hp,
        entropy_cost=0.5)
  grads = [g.numpy() for g in tape.gradient(loss, variables)]
  norm = np.sqrt(sum((g ** 2).sum() for g in grads))
  stats = learner.step(batch)
  assert learner._compiled_step.experimental_get_tracing_count() == traces  # pylint: disable=protected-access
  assert float(stats.clip_factor) == pytest.approx(0.25 / norm, rel=1e-4)
  for b, g, ms, v in zip(before, grads, mean_squares, variables):
    g = g * 0.25 / norm
    ms = 0.99 * ms + 0.01 * g ** 2
    np.testing.assert_allclose(v.numpy(), b - 0.002 * g / np.sqrt(ms + 0.1),
                               rtol=1e-4, atol=1e-7)
  assert learner.tunable.values()['entropy_cost'] == 0.5
  with pytest.raises(ValueError, match='not tunable'):
    learner.tunable.assign(batch_size=8)


def test_wrong_batch_size_is_a_clear_error():
  learner, specs = mlp_learner(HP)
  with pytest.raises(ValueError, match='Expected a batch of 4'):
    learner.step(random_batch(specs, 3, 3, seed=0))


def test_dmlab_agent_step_runs_with_lstm_and_instructions():
  hp = learner_lib.Hyperparameters(batch_size=2, unroll_length=3)
  agent = networks.dmlab_agent(num_actions=9, torso='shallow')
  specs = learner_lib.unroll_specs(
      agent, (tf.TensorSpec([72, 96, 3], tf.uint8),
              tf.TensorSpec([networks.MAX_INSTRUCTION_WORDS], tf.int32)),
      hp.unroll_length)
  learner = learner_lib.Learner(agent, specs, hp)
  batch = random_batch(specs, 2, 9, seed=4)
  batch = batch._replace(env_outputs=batch.env_outputs._replace(
      observation=(batch.env_outputs.observation[0],
                   tf.fill([2, 4, networks.MAX_INSTRUCTION_WORDS], 7))))
  stats = learner.step(batch)
  assert np.isfinite(stats.total_loss)
  assert int(stats.num_env_frames) == 2 * 3 * 4


MIRRORED_SCRIPT = textwrap.dedent('''
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices('CPU')[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import sys
    sys.path.insert(0, {tests!r})
    from test_learner import HP, mlp_learner, random_batch, _copy_variables
    # Fixed initial weights: with random ones the summed loss can land near
    # zero, where float32 rounding differences (two replicas' sums added vs
    # one sum) exceed any relative tolerance.
    tf.random.set_seed(0)
    mirrored, specs = mlp_learner(
        HP, tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1']))
    assert mirrored.strategy.num_replicas_in_sync == 2
    single, _ = mlp_learner(HP, tf.distribute.get_strategy())
    _copy_variables(single, mirrored)
    batch = random_batch(specs, HP.batch_size, 3, seed=5)
    for _ in range(3):
      stats_m = mirrored.step(batch)
      stats_s = single.step(batch)
      np.testing.assert_allclose(stats_m.total_loss, stats_s.total_loss,
                                 rtol=1e-5, atol=1e-5)
    for a, b in zip(mirrored.agent.trainable_variables,
                    single.agent.trainable_variables):
      for component in a.values:  # Every replica's copy.
        np.testing.assert_allclose(component.numpy(), b.numpy(), rtol=1e-5,
                                   atol=1e-6)
    print('MIRRORED_OK', float(stats_m.total_loss))
''')


def test_mirrored_strategy_on_two_cpus_matches_single_device():
  # Logical devices must be configured before TensorFlow initialises, so
  # this runs in a fresh interpreter.
  script = MIRRORED_SCRIPT.format(tests=os.path.join(REPO, 'tests'))
  result = subprocess.run([sys.executable, '-c', script], capture_output=True,
                          text=True, timeout=300, cwd=REPO)
  assert 'MIRRORED_OK' in result.stdout, result.stderr[-3000:]

# ----------------------------------------------------------------------------
# bfloat16 torso (--bfloat16).


@pytest.fixture
def bfloat16_torso():
  networks.use_bfloat16()
  try:
    yield
  finally:
    networks.use_bfloat16(False)


def _atari_learner(hp, seed):
  tf.random.set_seed(seed)
  agent = networks.atari_agent(num_actions=6, torso='shallow')
  specs = learner_lib.unroll_specs(
      agent, tf.TensorSpec([84, 84, 4], tf.uint8), hp.unroll_length)
  return learner_lib.Learner(agent, specs, hp), specs


def _conv_types(learner, batch):
  graph = learner._compiled_step.get_concrete_function(  # pylint: disable=protected-access
      learner.distribute(batch)).graph
  return {op.get_attr('T') for op in graph.get_operations()
          if op.type == 'Conv2D'}


def test_bfloat16_torso_computes_in_bfloat16_and_tracks_float32(
    bfloat16_torso):
  hp = learner_lib.Hyperparameters(batch_size=4, unroll_length=5,
                                   learning_rate=1e-3, epsilon=1e-5)
  mixed, specs = _atari_learner(hp, seed=0)
  networks.use_bfloat16(False)
  full, _ = _atari_learner(hp, seed=1)
  _copy_variables(mixed, full)
  batch = random_batch(specs, hp.batch_size, 6, seed=3)
  initial = [v.numpy() for v in full.agent.trainable_variables]
  networks.use_bfloat16()
  mixed_stats = [mixed.step(batch) for _ in range(20)]
  assert _conv_types(mixed, batch) == {tf.bfloat16}
  networks.use_bfloat16(False)
  full_stats = [full.step(batch) for _ in range(20)]
  assert _conv_types(full, batch) == {tf.float32}
  # Variables, core and loss stay float32.
  assert {v.dtype for v in mixed.agent.variables} == {tf.float32}
  # The same loss to bfloat16's precision (8 significant bits: ~0.4%
  # per rounding) at the first step, and the same learning after it.
  np.testing.assert_allclose(float(mixed_stats[0].total_loss),
                             float(full_stats[0].total_loss), rtol=0.03)
  np.testing.assert_allclose(float(mixed_stats[0].gradient_norm),
                             float(full_stats[0].gradient_norm), rtol=0.05)
  for stats in (mixed_stats, full_stats):
    assert float(stats[-1].total_loss) < float(stats[0].total_loss)
  # The 20 updates point the same way: cosine of the parameter changes.
  moved = [np.concatenate([(v.numpy() - i).ravel() for v, i in
                           zip(learner.agent.trainable_variables, initial)])
           for learner in (mixed, full)]
  cosine = moved[0] @ moved[1] / np.linalg.norm(moved[0]) / np.linalg.norm(
      moved[1])
  assert cosine > 0.9, cosine
  np.testing.assert_allclose(np.linalg.norm(moved[0]),
                             np.linalg.norm(moved[1]), rtol=0.1)
