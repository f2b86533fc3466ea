"""The gymnasium suite: any registered gymnasium id with discrete actions.

Small control tasks such as CartPole-v1 (the CI learning test): vector
observations, an MLP torso, no action repeat, and settings that learn within a
few hundred thousand steps. There are no reference scores.
"""

from scalable_agent import suites


class GymnasiumSuite(suites.Suite):
  """Registered gymnasium ids (see the module docstring)."""
  name = 'gymnasium'
  title = 'gymnasium'
  num_action_repeats = 1
  default_torso = 'mlp'
  envs_per_actor = 8

  def resolve(self, name):
    import gymnasium  # pylint: disable=g-import-not-at-top
    from scalable_agent import learner as learner_lib  # pylint: disable=g-import-not-at-top
    if name not in gymnasium.registry:
      return None
    hparams = learner_lib.Hyperparameters(
        batch_size=8, unroll_length=20, num_action_repeats=1,
        total_environment_frames=5e5, entropy_cost=0.01, learning_rate=0.003,
        epsilon=0.01, max_gradient_norm=40., reward_clipping='none')
    return suites.LevelConfig(name, self, (name,), hparams, hparams)

  def known_names(self):
    import gymnasium  # pylint: disable=g-import-not-at-top
    return list(gymnasium.registry)

  def make_environment(self, config, num_envs, seed=0, first_env_index=0,
                       training=True, levels=None,
                       options=suites.DEFAULT_OPTIONS):
    """Each environment with gymnasium's own settings, in training and
    evaluation alike."""
    del first_env_index, training, levels  # One level, one protocol.
    self.protocol(options.max_episode_frames)  # Raises if a cap is asked.
    import gymnasium  # pylint: disable=g-import-not-at-top
    from scalable_agent import environments  # pylint: disable=g-import-not-at-top
    return environments.GymnasiumBatch(
        lambda i: gymnasium.make(config.levels[0]), num_envs, seed=seed)

  def make_agent(self, num_actions, torso=None):
    from scalable_agent import networks  # pylint: disable=g-import-not-at-top
    return networks.ImpalaAgent(
        num_actions, networks.make_torso(torso or self.default_torso),
        use_lstm=False)

  def observation_spec(self, config):
    import gymnasium  # pylint: disable=g-import-not-at-top
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    env = gymnasium.make(config.levels[0])
    try:
      space = env.observation_space
      return tf.TensorSpec(space.shape, tf.as_dtype(space.dtype))
    finally:
      env.close()


SUITE = GymnasiumSuite()
