"""Tests of the Sonnet agent: sizes from the paper, unroll == step-by-step."""

import numpy as np
import pytest
import tensorflow as tf

from scalable_agent import environments
from scalable_agent import networks


def _num_parameters(module):
  return sum(int(np.prod(v.shape)) for v in module.trainable_variables)


def _dmlab_env_output(batch_shape, rng, done=None, instruction=None):
  """Random DMLab-shaped EnvOutput with leading dims `batch_shape`."""
  shape = list(batch_shape)
  if instruction is None:
    instruction = np.stack([networks.hash_instruction(t) for t in
                            rng.choice(['', 'pick the red balloon',
                                        'go to the green hat now'],
                                       size=int(np.prod(shape)))])
  return environments.EnvOutput(
      reward=tf.constant(rng.normal(size=shape) * 3, tf.float32),
      info=environments.EpisodeInfo(tf.zeros(shape), tf.zeros(shape, tf.int32),
                                    tf.zeros(shape, tf.bool)),
      done=tf.constant(rng.random(shape) < 0.3 if done is None else done),
      observation=(
          tf.constant(rng.integers(0, 256, shape + [72, 96, 3]), tf.uint8),
          tf.constant(np.reshape(instruction, shape + [-1]), tf.int32)))


def _expected_dmlab_parameters(torso_parameters, torso_output_size=256,
                               num_actions=9):
  """Parameter count of the DMLab agent around a torso, from the paper."""
  def lstm(inputs, units):  # Sonnet's LSTM: [in + units, 4 units] + bias.
    return 4 * units * (inputs + units) + 4 * units
  language = 1000 * 20 + lstm(20, 64)
  core_inputs = torso_output_size + 1 + num_actions + 64
  core = lstm(core_inputs, 256)
  heads = 256 * num_actions + num_actions + 256 + 1
  return torso_parameters + language + core + heads


def _conv(k, cin, cout):
  return k * k * cin * cout + cout


@pytest.mark.parametrize('torso, expected', [
    ('shallow', 1_230_426), ('deep', 1_628_010)])
def test_dmlab_parameter_counts_match_paper(torso, expected):
  agent = networks.dmlab_agent(num_actions=9, torso=torso)
  rng = np.random.default_rng(0)
  agent.step(tf.zeros([1], tf.int32), _dmlab_env_output([1], rng),
             agent.initial_state(1))
  assert _num_parameters(agent) == expected


def test_dmlab_parameter_counts_follow_from_architecture():
  # The same two numbers derived layer by layer from the reference README.
  shallow = (_conv(8, 3, 16) + _conv(4, 16, 32)
             + 7 * 10 * 32 * 256 + 256)  # 72x96 -> 17x23 -> 7x10.
  deep = 0
  for cin, c in [(3, 16), (16, 32), (32, 32)]:
    deep += _conv(3, cin, c) + 4 * _conv(3, c, c)
  deep += 9 * 12 * 32 * 256 + 256  # 72x96 pooled 3 times -> 9x12.
  assert _expected_dmlab_parameters(shallow) == 1_230_426
  assert _expected_dmlab_parameters(deep) == 1_628_010


@pytest.mark.parametrize('torso, expected', [
    # 84x84 -> 20x20 -> 9x9 (VALID).
    ('shallow', _conv(8, 4, 16) + _conv(4, 16, 32) + 9 * 9 * 32 * 256 + 256),
    # 84x84 -> 20 -> 9 -> 7, Linear 512.
    ('nature', _conv(8, 4, 32) + _conv(4, 32, 64) + _conv(3, 64, 64)
     + 7 * 7 * 64 * 512 + 512),
])
def test_atari_parameter_counts(torso, expected):
  num_actions = 6
  agent = networks.atari_agent(num_actions, torso)
  env_output = environments.EnvOutput(
      tf.zeros([2]), None, tf.zeros([2], tf.bool),
      tf.zeros([2, 84, 84, 4], tf.uint8))
  output, state = agent.step(tf.zeros([2], tf.int32), env_output,
                             agent.initial_state(2))
  assert state == ()
  assert output.policy_logits.shape == [2, num_actions]
  assert output.baseline.shape == [2]
  feature_size = 512 if torso == 'nature' else 256
  heads = feature_size * (num_actions + 1) + num_actions + 1
  assert _num_parameters(agent) == expected + heads


def test_deep_torso_has_fifteen_conv_layers():
  torso = networks.DeepTorso()
  torso(tf.zeros([1, 84, 84, 4], tf.uint8))
  kernels = [v for v in torso.trainable_variables
             if v.shape.rank == 4]
  assert len(kernels) == 15


def test_unroll_equals_step_by_step_with_resets():
  rng = np.random.default_rng(1)
  T, B = 6, 3
  agent = networks.dmlab_agent(num_actions=9, torso='shallow')
  done = rng.random([T, B]) < 0.3
  done[2, 0] = True  # At least one reset mid-unroll.
  env_outputs = _dmlab_env_output([T, B], rng, done=done)
  prev_actions = tf.constant(rng.integers(0, 9, [T, B]), tf.int32)
  # A non-trivial starting state, so that resets are visible.
  state = agent.initial_state(B)
  state = tf.nest.map_structure(
      lambda s: tf.constant(rng.normal(size=s.shape), tf.float32), state)

  unrolled, unrolled_state = agent.unroll(prev_actions, env_outputs, state)

  stepped_logits, stepped_baselines = [], []
  step_state = state
  for t in range(T):
    env_output_t = tf.nest.map_structure(lambda x, t=t: x[t], env_outputs)
    output, step_state = agent.step(prev_actions[t], env_output_t, step_state)
    stepped_logits.append(output.policy_logits)
    stepped_baselines.append(output.baseline)

  np.testing.assert_allclose(unrolled.policy_logits, tf.stack(stepped_logits),
                             rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(unrolled.baseline, tf.stack(stepped_baselines),
                             rtol=1e-5, atol=1e-5)
  for a, b in zip(tf.nest.flatten(unrolled_state),
                  tf.nest.flatten(step_state)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_done_resets_the_core_state():
  rng = np.random.default_rng(2)
  agent = networks.dmlab_agent(num_actions=9, torso='shallow')
  env_output = _dmlab_env_output([2], rng, done=np.array([True, True]))
  random_state = tf.nest.map_structure(
      lambda s: tf.constant(rng.normal(size=s.shape), tf.float32),
      agent.initial_state(2))
  prev_action = tf.constant([3, 4])
  from_random, state_a = agent.step(prev_action, env_output, random_state)
  from_zero, state_b = agent.step(prev_action, env_output,
                                  agent.initial_state(2))
  np.testing.assert_allclose(from_random.policy_logits, from_zero.policy_logits)
  np.testing.assert_allclose(state_a.hidden, state_b.hidden)
  # Without `done` the starting state matters.
  env_output = env_output._replace(done=tf.constant([False, False]))
  kept, _ = agent.step(prev_action, env_output, random_state)
  assert not np.allclose(kept.policy_logits, from_zero.policy_logits)


def test_instruction_encoder_ignores_padding_and_zeroes_empty():
  encoder = networks.InstructionEncoder()
  ids = np.stack([networks.hash_instruction('red balloon'),
                  networks.hash_instruction('')])
  out = encoder(tf.constant(ids))
  np.testing.assert_array_equal(out[1], np.zeros(64))
  # Same words at the front, whatever padding follows: same encoding as a
  # two-word sequence without padding. Same batch size on both sides: a batch
  # of 1 may take another matmul kernel and round differently (~1e-7).
  short = encoder(tf.constant(ids[:, :2]))
  np.testing.assert_allclose(out[0], short[0], rtol=1e-6)
  assert np.abs(out[0]).sum() > 0


def test_hash_instruction():
  ids = networks.hash_instruction('Pick  the red  balloon')
  assert ids.dtype == np.int32 and ids.shape == (networks.MAX_INSTRUCTION_WORDS,)
  assert list(ids[4:]) == [-1] * (networks.MAX_INSTRUCTION_WORDS - 4)
  assert (ids[:4] >= 0).all() and (ids[:4] < 1000).all()
  # Case-insensitive and stable.
  np.testing.assert_array_equal(ids, networks.hash_instruction('pick the RED balloon'))
  assert ids[1] != ids[2]


def test_actions_are_sampled_from_the_policy():
  tf.random.set_seed(0)
  agent = networks.ImpalaAgent(3, networks.MLPTorso(), use_lstm=False)
  batch = 20_000
  env_output = environments.EnvOutput(
      tf.zeros([batch]), None, tf.zeros([batch], tf.bool), tf.ones([batch, 4]))
  agent.step(tf.zeros([batch], tf.int32), env_output, ())
  # A clearly non-uniform policy (0.665, 0.245, 0.090): a sampler that
  # ignored the logits, or took their argmax, would fail.
  policy_layer = agent._policy_logits  # pylint: disable=protected-access
  policy_layer.w.assign(tf.zeros_like(policy_layer.w))
  policy_layer.b.assign([2., 1., 0.])
  output, _ = agent.step(tf.zeros([batch], tf.int32), env_output, ())
  probs = tf.nn.softmax(output.policy_logits[0]).numpy()
  np.testing.assert_allclose(probs, [0.665, 0.245, 0.090], atol=1e-3)
  counts = np.bincount(output.action.numpy(), minlength=3)
  # Binomial standard deviation is below 0.0034 per action: 5 sigma.
  np.testing.assert_allclose(counts / batch, probs, atol=0.017)
  assert output.action.dtype == tf.int32


def test_unknown_torso_is_a_clear_error():
  with pytest.raises(ValueError, match='Unknown torso .*deep'):
    networks.atari_agent(6, torso='resnet50')


def test_instruction_needs_lstm():
  with pytest.raises(ValueError, match='use_lstm'):
    networks.ImpalaAgent(9, networks.ShallowTorso(), use_lstm=False,
                         use_instruction=True)
