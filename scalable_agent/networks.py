"""The IMPALA agent in Sonnet 2: torsos, the recurrent core, policy and baseline.

One `ImpalaAgent` class serves every suite; what differs is configuration:

  * DMLab (paper Figure 3): image torso (shallow or deep) ++ reward clipped to
    [-1, 1] ++ one-hot last action ++ a language LSTM over the instruction,
    then a 256-unit LSTM whose state is reset to zero where `done`.
    `dmlab_agent()` builds it.
  * Atari (paper section 5.3): feed-forward, no LSTM; the torso output goes
    straight to the heads. `atari_agent()` builds it with the 'shallow', 'deep'
    or 'nature' torso.
  * Small vector-observation tasks (CartPole, used to prove learning in CI):
    an MLP torso, feed-forward.

Two entry points, for the two callers:

  * `step(prev_action, env_output, core_state)`: one time step for a batch of
    B environments (what an actor calls). Inputs are [B, ...].
  * `unroll(prev_actions, env_outputs, core_state)`: T time steps for B
    environments (what the learner calls). Inputs are time-major [T, B, ...].

`unroll` gives exactly what calling `step` T times gives (tests check this).
"""

import collections
import zlib

import numpy as np
import sonnet as snt
import tensorflow as tf
import tensorflow_probability as tfp

# Instructions (DMLab's INSTR text) reach the agent as word ids: each
# whitespace-separated, lower-cased word hashed into NUM_INSTRUCTION_BUCKETS
# buckets, padded with -1 to MAX_INSTRUCTION_WORDS (longer texts are cut).
# Hashing happens in the environment adapter, not in the graph, so that
# unrolls cross the network as fixed-shape int32 tensors rather than strings.
NUM_INSTRUCTION_BUCKETS = 1000
MAX_INSTRUCTION_WORDS = 16

# What the agent produces at each step. Shapes [B] / [B, NUM_ACTIONS] / [B] for
# `step`, with a leading [T] for `unroll`.
AgentOutput = collections.namedtuple('AgentOutput',
                                     'action policy_logits baseline')


def hash_instruction(text):
  """Text -> int32 [MAX_INSTRUCTION_WORDS] word ids, -1 where there is no word.

  crc32 is used (not Python's salted `hash`) so that ids agree across
  processes and machines.
  """
  ids = np.full([MAX_INSTRUCTION_WORDS], -1, np.int32)
  words = text.lower().split()[:MAX_INSTRUCTION_WORDS]
  for i, word in enumerate(words):
    ids[i] = zlib.crc32(word.encode('utf-8')) % NUM_INSTRUCTION_BUCKETS
  return ids


def _scaled_frame(frame):
  """uint8 (or float, unscaled) [B, H, W, C] -> float in [0, 1]: float32,
  or the frame's own float type (bfloat16 under mixed precision)."""
  dtype = frame.dtype if frame.dtype.is_floating else tf.float32
  return tf.cast(frame, dtype) / 255.


class ShallowTorso(snt.Module):
  """The shallow net of paper Figure 3 (left), Mnih et al. 2016's A3C net.

  conv 8x8 stride 4, 16 channels, ReLU; conv 4x4 stride 2, 32 channels, ReLU
  (both VALID); Linear 256, ReLU. Input uint8 [B, H, W, C]; output [B, 256].
  """

  def __init__(self, name='shallow_torso'):
    super().__init__(name=name)
    self._conv1 = snt.Conv2D(16, 8, stride=4, padding='VALID', name='conv1')
    self._conv2 = snt.Conv2D(32, 4, stride=2, padding='VALID', name='conv2')
    self._linear = snt.Linear(256, name='linear')

  def __call__(self, frame):
    x = tf.nn.relu(self._conv1(_scaled_frame(frame)))
    x = tf.nn.relu(self._conv2(x))
    return tf.nn.relu(self._linear(snt.Flatten()(x)))


class DeepTorso(snt.Module):
  """The deep ResNet of paper Figure 3 (right), as in the released code.

  Three sections with 16, 32, 32 channels, each: 3x3 conv stride 1, 3x3 max
  pool stride 2, two residual blocks x + conv(relu(conv(relu(x)))); all SAME.
  Then ReLU, Linear 256, ReLU. 15 conv layers. Input uint8 [B, H, W, C];
  output [B, 256].
  """

  def __init__(self, name='deep_torso'):
    super().__init__(name=name)
    self._sections = []
    for i, channels in enumerate((16, 32, 32)):
      conv = snt.Conv2D(channels, 3, stride=1, padding='SAME',
                        name=f'section_{i}_conv')
      blocks = [(snt.Conv2D(channels, 3, padding='SAME',
                            name=f'section_{i}_res_{j}_conv_0'),
                 snt.Conv2D(channels, 3, padding='SAME',
                            name=f'section_{i}_res_{j}_conv_1'))
                for j in range(2)]
      self._sections.append((conv, blocks))
    self._linear = snt.Linear(256, name='linear')

  def __call__(self, frame):
    x = _scaled_frame(frame)
    for conv, blocks in self._sections:
      x = conv(x)
      x = tf.nn.pool(x, window_shape=[3, 3], pooling_type='MAX',
                     padding='SAME', strides=[2, 2])
      for conv_0, conv_1 in blocks:
        x += conv_1(tf.nn.relu(conv_0(tf.nn.relu(x))))
    x = tf.nn.relu(x)
    return tf.nn.relu(self._linear(snt.Flatten()(x)))


class NatureTorso(snt.Module):
  """The Nature DQN net (Mnih et al. 2015), TorchBeast's and Sample Factory's.

  conv 8x8/4 32 ch, conv 4x4/2 64 ch, conv 3x3/1 64 ch (VALID, ReLU each);
  Linear 512, ReLU. Offered so Atari runs can be compared with those
  libraries on an equal network. Input uint8 [B, H, W, C]; output [B, 512].
  """

  def __init__(self, name='nature_torso'):
    super().__init__(name=name)
    self._convs = [
        snt.Conv2D(32, 8, stride=4, padding='VALID', name='conv1'),
        snt.Conv2D(64, 4, stride=2, padding='VALID', name='conv2'),
        snt.Conv2D(64, 3, stride=1, padding='VALID', name='conv3'),
    ]
    self._linear = snt.Linear(512, name='linear')

  def __call__(self, frame):
    x = _scaled_frame(frame)
    for conv in self._convs:
      x = tf.nn.relu(conv(x))
    return tf.nn.relu(self._linear(snt.Flatten()(x)))


class MLPTorso(snt.Module):
  """Two tanh layers for vector observations: float [B, D] -> [B, 64]."""

  def __init__(self, hidden_sizes=(64, 64), name='mlp_torso'):
    super().__init__(name=name)
    self._mlp = snt.nets.MLP(hidden_sizes, activation=tf.tanh,
                             activate_final=True)

  def __call__(self, observation):
    # bfloat16 observations (--bfloat16) stay bfloat16.
    if observation.dtype != tf.bfloat16:
      observation = tf.cast(observation, tf.float32)
    return self._mlp(observation)


TORSOS = {
    'shallow': ShallowTorso,
    'deep': DeepTorso,
    'nature': NatureTorso,
    'mlp': MLPTorso,
}


def make_torso(name):
  try:
    return TORSOS[name]()
  except KeyError:
    raise ValueError(f'Unknown torso {name!r}; choose one of '
                     f'{sorted(TORSOS)}.') from None


class InstructionEncoder(snt.Module):
  """A 64-unit LSTM over 20-dim embeddings of the instruction's words.

  Input int32 [B, MAX_INSTRUCTION_WORDS] word ids, -1 padding. Output [B, 64]:
  the LSTM output after the last word, zeros for an empty instruction (as the
  reference's dynamic_rnn with sequence_length gives).
  """

  def __init__(self, name='instruction_encoder'):
    super().__init__(name=name)
    self._embed = snt.Embed(NUM_INSTRUCTION_BUCKETS, 20, name='embedding')
    self._lstm = snt.LSTM(64, name='language_lstm')

  def __call__(self, word_ids):
    is_word = word_ids >= 0  # [B, W]
    embeddings = self._embed(tf.maximum(word_ids, 0))  # [B, W, 20]
    state = self._lstm.initial_state(tf.shape(word_ids)[0])
    for i in range(word_ids.shape[1]):
      _, new_state = self._lstm(embeddings[:, i], state)
      # Padding positions leave the state untouched, so the final hidden state
      # is the output after the last real word.
      state = tf.nest.map_structure(
          lambda new, old, i=i: tf.where(is_word[:, i, None], new, old),
          new_state, state)
    return state.hidden


class ImpalaAgent(snt.Module):
  """Torso -> (optional) LSTM core -> policy logits and baseline.

  Args:
    num_actions: size of the discrete action set.
    torso: a module mapping the frame (or vector observation) [B, ...] to
      features [B, F]; see `TORSOS`.
    use_lstm: if True (DMLab), the core is a `core_size` LSTM fed with the
      torso output, the clipped reward and the one-hot previous action, reset
      to zeros where `done`. If False (Atari), the agent is feed-forward and
      its state is the empty tuple.
    use_instruction: if True, observations are `(frame, instruction)` with
      instruction word ids int32 [B, MAX_INSTRUCTION_WORDS], encoded by a
      language LSTM and fed to the core. Requires `use_lstm`.
    core_size: LSTM size.
  """

  def __init__(self, num_actions, torso, use_lstm=True, use_instruction=False,
               core_size=256, name='impala_agent'):
    super().__init__(name=name)
    if use_instruction and not use_lstm:
      raise ValueError('use_instruction=True needs use_lstm=True: the '
                       'instruction is an input of the LSTM core.')
    self._num_actions = num_actions
    self._use_lstm = use_lstm
    self._use_instruction = use_instruction
    self._torso = torso
    self._instruction_encoder = (InstructionEncoder() if use_instruction
                                 else None)
    self._core = snt.LSTM(core_size, name='core_lstm') if use_lstm else None
    self._policy_logits = snt.Linear(num_actions, name='policy_logits')
    self._baseline = snt.Linear(1, name='baseline')

  @property
  def num_actions(self):
    return self._num_actions

  def initial_state(self, batch_size):
    """Core state for a batch: snt.LSTMState([B, 256] x 2), or () if none."""
    if self._core is None:
      return ()
    return self._core.initial_state(batch_size)

  def _core_inputs(self, prev_action, env_output):
    """[N] prev actions and N env outputs -> core inputs [N, F']."""
    if self._use_instruction:
      frame, instruction = env_output.observation
    else:
      frame = env_output.observation
    if frame.dtype == tf.uint8:
      # Mixed precision casts float inputs only: the frame is made float
      # here (unscaled, exact) and scaled by the torso in the compute type.
      frame = tf.cast(frame, tf.float32)
    features = self._torso_features(frame)
    if not self._use_lstm:
      return features
    clipped_reward = tf.clip_by_value(
        tf.cast(env_output.reward, tf.float32), -1., 1.)[:, None]
    one_hot_action = tf.one_hot(prev_action, self._num_actions)
    parts = [features, clipped_reward, one_hot_action]
    if self._use_instruction:
      parts.append(self._instruction_encoder(instruction))
    return tf.concat(parts, axis=-1)

  @snt.mixed_precision.modes([tf.float32, tf.bfloat16])
  def _torso_features(self, frame):
    """The torso; after this agent's first call (which makes its float32
    variables), in bfloat16 while `snt.mixed_precision.enable(tf.bfloat16)`
    is on (`use_bfloat16`): inputs and variables cast to bfloat16 as the
    torso reads them, features cast back to float32. The core, the heads
    and the loss stay float32."""
    return self._torso(frame)

  def _head(self, core_output):
    """[N, F] -> AgentOutput with [N] actions sampled from the policy."""
    policy_logits = self._policy_logits(core_output)
    baseline = tf.squeeze(self._baseline(core_output), axis=-1)
    action = tfp.distributions.Categorical(
        logits=policy_logits, dtype=tf.int32).sample()
    return AgentOutput(action, policy_logits, baseline)

  def _core_step(self, core_input, done, core_state):
    """One LSTM step, with the state zeroed first where a new episode began."""
    initial = self._core.initial_state(tf.shape(done)[0])
    core_state = tf.nest.map_structure(
        lambda init, s: tf.where(done[:, None], init, s),
        initial, core_state)
    return self._core(core_input, core_state)

  def step(self, prev_action, env_output, core_state):
    """One step for B environments.

    Args:
      prev_action: int32 [B], the action that led to `env_output`.
      env_output: `environments.EnvOutput` with [B] fields and observation
        nest [B, ...]. `done[b]` means the observation starts a new episode.
      core_state: state from `initial_state(B)` or the previous step.

    Returns:
      (AgentOutput with [B] fields, new core state).
    """
    core_input = self._core_inputs(prev_action, env_output)
    if self._core is None:
      return self._head(core_input), ()
    core_output, core_state = self._core_step(core_input, env_output.done,
                                              core_state)
    return self._head(core_output), core_state

  def unroll(self, prev_actions, env_outputs, core_state):
    """T steps for B environments, time-major.

    Args:
      prev_actions: int32 [T, B].
      env_outputs: `EnvOutput` with [T, B] fields, observation [T, B, ...].
      core_state: state at the first step, [B, ...].

    Returns:
      (AgentOutput with [T, B] fields, core state after the last step).
    """
    # The torso (the expensive part) sees all T*B frames in one batch.
    core_inputs = snt.BatchApply(self._core_inputs)(prev_actions, env_outputs)
    if self._core is not None:
      core_outputs = []
      for t in range(core_inputs.shape[0]):
        output, core_state = self._core_step(core_inputs[t],
                                             env_outputs.done[t], core_state)
        core_outputs.append(output)
      core_inputs = tf.stack(core_outputs)
    return snt.BatchApply(self._head)(core_inputs), core_state


def use_bfloat16(enabled=True):
  """Runs every agent's torso in bfloat16 in this process (see
  `ImpalaAgent._torso_features`): `--bfloat16`. Call before building
  agents; an agent's first call is still float32 (it creates variables)."""
  if enabled:
    snt.mixed_precision.enable(tf.bfloat16)
  else:
    snt.mixed_precision.disable()


def dmlab_agent(num_actions=9, torso='deep'):
  """The DMLab agent of paper Figure 3: LSTM core and language input."""
  return ImpalaAgent(num_actions, make_torso(torso), use_lstm=True,
                     use_instruction=True)


def atari_agent(num_actions, torso='shallow'):
  """The feed-forward Atari agent (paper section 5.3)."""
  return ImpalaAgent(num_actions, make_torso(torso), use_lstm=False)
