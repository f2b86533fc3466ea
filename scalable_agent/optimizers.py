"""The learner's optimisers and its learning-rate schedule.

`RMSProp` has TF1's semantics, the optimiser the paper's numbers came from;
`Adam` is the alternative `--optimizer=adam` offers. Both create their slots
at construction (call them under the strategy's scope so that the slots are
mirrored like the variables) and take the learning rate at each `apply`, so
that the schedule (`linear_learning_rate`) stays outside them.
"""

import tensorflow as tf


class RMSProp(tf.Module):
  """RMSProp with the semantics of TF1's `tf.train.RMSPropOptimizer`.

  Differs from Keras' RMSprop in two ways that matter with IMPALA's large
  epsilon (0.1 or 0.01): the mean-square accumulator starts at ONES, and
  epsilon sits inside the square root:

    ms  <- decay * ms + (1 - decay) * g^2
    mom <- momentum * mom + lr * g / sqrt(ms + epsilon)
    var <- var - mom

  Slots are created at construction (call it under the strategy's scope so
  they are mirrored like the variables). `initial_mean_square` other than 1
  departs from TF1 (0 is where PyTorch and Keras start).
  """

  def __init__(self, variables, decay=0.99, momentum=0., epsilon=0.1,
               initial_mean_square=1., name='rmsprop'):
    super().__init__(name=name)
    self._decay = decay
    self._momentum = momentum
    self._epsilon = epsilon
    with self.name_scope:
      self.mean_squares = [
          tf.Variable(tf.fill(tf.shape(v), float(initial_mean_square)),
                      trainable=False,
                      name=v.name.split(':')[0].replace('/', '_') + '_ms')
          for v in variables]
      self.moments = [
          tf.Variable(tf.zeros_like(v), trainable=False,
                      name=v.name.split(':')[0].replace('/', '_') + '_mom')
          for v in variables] if momentum else None

  def apply(self, gradients, variables, learning_rate, epsilon=None):
    """One update. epsilon: a scalar tensor overriding the constructor's
    (population-based training changes it during a run)."""
    epsilon = self._epsilon if epsilon is None else epsilon
    for i, (g, v) in enumerate(zip(gradients, variables)):
      ms = self.mean_squares[i]
      ms.assign(self._decay * ms + (1. - self._decay) * tf.square(g))
      update = learning_rate * g * tf.math.rsqrt(ms + epsilon)
      if self.moments is not None:
        mom = self.moments[i]
        mom.assign(self._momentum * mom + update)
        update = mom
      v.assign_sub(update)


class Adam(tf.Module):
  """Adam (Kingma and Ba 2015) with bias correction, slots made at once:

    m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
    var <- var - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + epsilon)

  Unlike RMSProp with a large epsilon, every parameter moves by about `lr`
  per step whatever the scale of its gradient (summed loss or mean).
  """

  def __init__(self, variables, beta1=0.9, beta2=0.999, epsilon=1e-8,
               name='adam'):
    super().__init__(name=name)
    self._beta1 = beta1
    self._beta2 = beta2
    self._epsilon = epsilon
    with self.name_scope:
      self.step = tf.Variable(0., trainable=False, name='step')

      def slot(v, suffix):
        return tf.Variable(tf.zeros_like(v), trainable=False,
                           name=v.name.split(':')[0].replace('/', '_') + suffix)
      self.first_moments = [slot(v, '_m') for v in variables]
      self.second_moments = [slot(v, '_v') for v in variables]

  def apply(self, gradients, variables, learning_rate, epsilon=None):
    """One update; epsilon as `RMSProp.apply`."""
    epsilon = self._epsilon if epsilon is None else epsilon
    step = self.step.assign_add(1.)
    corrected_rate = learning_rate * tf.sqrt(
        1. - self._beta2 ** step) / (1. - self._beta1 ** step)
    for g, v, m, s in zip(gradients, variables, self.first_moments,
                          self.second_moments):
      m.assign(self._beta1 * m + (1. - self._beta1) * g)
      s.assign(self._beta2 * s + (1. - self._beta2) * tf.square(g))
      # The epsilon-hat form of the paper (section 2): epsilon scaled like
      # the uncorrected second moment.
      v.assign_sub(corrected_rate * m / (tf.sqrt(s) + epsilon))


def make_optimizer(variables, hparams):
  """The optimiser `hparams.optimizer` names, over `variables`."""
  if hparams.optimizer == 'rmsprop':
    return RMSProp(variables, hparams.decay, hparams.momentum,
                   hparams.epsilon, hparams.initial_mean_square)
  if hparams.optimizer == 'adam':
    return Adam(variables, epsilon=hparams.epsilon)
  raise ValueError(f'Unknown optimizer {hparams.optimizer!r}; choose rmsprop '
                   'or adam.')


def linear_learning_rate(base_rate, num_env_frames, total_environment_frames):
  """base_rate (a number or a scalar tensor) annealed linearly to 0 at
  total_environment_frames."""
  progress = tf.minimum(
      tf.cast(num_env_frames, tf.float64) / total_environment_frames, 1.)
  return tf.cast(tf.cast(base_rate, tf.float64) * (1. - progress),
                 tf.float32)
