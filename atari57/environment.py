"""Atari-57 environments with the IMPALA paper's protocol.

(Over 500 lines on purpose: the fast C++ route and the gymnasium route of
the same protocol, and the life-loss bookkeeping they share, are kept in one
module so that they can be read and checked against each other.)

Protocol (paper Table G.1 and the evaluation protocol of the reference README):
  - no sticky actions (repeat_action_probability 0);
  - action repeat 4, observation = max over the last 2 of those frames;
  - 84x84 grey frames, a stack of the last 4: observation uint8 [84, 84, 4],
    channels last, oldest frame first (index 3 is the newest);
  - a uniform random number of no-ops at the start of each game: 1..30 in
    the gymnasium route (AtariPreprocessing), 0..29 in ale-py's vector env
    (its C++ draws from [0, noop_max - 1] and cannot be told otherwise):
    the same 30 distinct starts, one frame earlier;
  - a life loss ends a TRAINING episode, not an EVALUATION one;
  - a cap of 108,000 frames (30 minutes of play) per game (counted after the
    no-ops in the vector env, including them in gymnasium's ALE env);
  - the game's minimal action set for one game, all 18 actions for several
    (so that one policy head means the same thing in every game; see
    `full_action_table` for Skiing, whose legal set has only 9);
  - rewards are raw game points; the learner clips them.

Two routes give the same protocol:
  - `make_batched_environment`: N environments in ale-py's C++ vector env
    (`AtariVectorEnv`: emulation and preprocessing in C++ threads). This is
    the fast route that actors use.
  - `make_gymnasium_env`: one `gymnasium.Env` built from gymnasium wrappers
    (slower, pure Python preprocessing); `make_gymnasium_batch` puts N of them
    in `scalable_agent.environments.GymnasiumBatch` with the same extras as
    the fast route.

Life loss, episodes and games
-----------------------------
During training a life loss ends the learner's episode (`done` is True, so the
return is not bootstrapped across it) but the game goes on from where it was,
as in DQN: the next observation is the one right after the life was lost, with
no reset and no new no-ops. Only the end of the game (game over or the frame
cap) resets the emulator. Resetting the whole game on a life loss instead
(what `AtariVectorEnv(episodic_life=True)` and gymnasium's
`AtariPreprocessing(terminal_on_life_loss=True)` followed by a reset do) would
keep the agent forever in its first life and make the game's score
unobservable.

Research reports game scores, so the statistics in `EnvOutput.info`
(`EpisodeInfo`) count the whole GAME, across lives: `episode_return[i]` is the
running game return including this step's reward and `episode_step[i]` the
agent steps since the game started; both go back to zero only after a game
ends. A life-loss `done` therefore carries a partial game return. To tell the
two apart each batch sets `last_game_over`, bool [N], on every reset/step:
True where that step ended a game. A logger records `info[i]` where
`last_game_over[i]` (see `game_over_mask`), the learner uses `done`. In
evaluation (`training=False`) `done` and `last_game_over` are the same.
"""

import collections

import ale_py
from ale_py import vector_env as ale_vector_env
import cv2
import gymnasium
from gymnasium import spaces
from gymnasium import wrappers
import numpy as np

from atari57 import games as games_lib
from scalable_agent import environments

ACTION_REPEAT = 4  # Emulator frames per agent step.
FRAME_SIZE = 84  # Observations are FRAME_SIZE x FRAME_SIZE.
FRAME_STACK = 4  # Frames per observation.
NOOP_MAX = 30  # Random no-ops at the start of each game, up to this many.
MAX_EPISODE_FRAMES = 108000  # 30 minutes at 60 frames/s.
NUM_FULL_ACTIONS = 18  # The Atari 2600's full action set.

OBSERVATION_SHAPE = (FRAME_SIZE, FRAME_SIZE, FRAME_STACK)

# Where environment i of a batch comes from. `index` is its global index
# (first_env_index + i), `game` its `games_lib.Game`, `level_id` the game's
# index in `games_lib.GAMES`.
EnvAssignment = collections.namedtuple('EnvAssignment', 'index game level_id')


def assign_games(games, num_envs, first_env_index=0):
  """Round-robin: global environment k plays games[k % len(games)].

  With `first_env_index`, actors that each own a slice of the environments
  (actor a has first_env_index = a * num_envs) spread the games the same way a
  single big batch would.

  Args:
    games: non-empty list of game names or gymnasium ids (str), or one str.
    num_envs: N, environments in this batch.
    first_env_index: global index of the batch's first environment.

  Returns:
    A list of N `EnvAssignment`s.
  """
  if isinstance(games, str):
    games = [games]
  games = [games_lib.get_game(game) for game in games]
  if not games:
    raise ValueError('`games` must name at least one game.')
  if num_envs < 1:
    raise ValueError(f'num_envs must be positive, got {num_envs}.')
  assignments = []
  for i in range(num_envs):
    index = first_env_index + i
    game = games[index % len(games)]
    assignments.append(EnvAssignment(
        index=index, game=game,
        level_id=games_lib.game_index(game.name)))
  return assignments


def _default_full_action_space(assignments, full_action_space):
  # Several games share one policy head only through the full action set:
  # with minimal sets, action 3 would be RIGHT in one game and DOWN in another.
  if full_action_space is None:
    return len({a.game.name for a in assignments}) > 1
  return bool(full_action_space)


def full_action_table(action_set):
  """Maps the 18 joystick actions to indices in a game's legal action set.

  ale-py's "full" (legal) action set has all 18 actions in every game but
  Skiing, where it leaves out the 9 FIRE actions (FIRE does nothing there).
  A multi-task agent needs the same 18 actions everywhere, so an absent action
  is played as the same joystick direction without FIRE (which has the same
  effect in that game), or NOOP failing that.

  Args:
    action_set: sequence of `ale_py.Action` (what the game accepts).

  Returns:
    int32 [18]: entry a is the index in `action_set` that plays action a.
  """
  index = {int(action.value): i for i, action in enumerate(action_set)}
  table = np.zeros([NUM_FULL_ACTIONS], np.int32)
  for action in range(NUM_FULL_ACTIONS):
    played = action
    if played not in index:
      # FIRE (1) -> NOOP (0); UPFIRE..DOWNLEFTFIRE (10..17) -> UP..DOWNLEFT.
      played = 0 if played == 1 else played - 8 if played >= 10 else played
    table[action] = index.get(played, index.get(0, 0))
  return table


def game_over_mask(env, env_output):
  """bool [N]: environments whose last step (or reset) ended a whole game.

  Works for any BatchedEnvironment: batches from this module expose
  `last_game_over`; elsewhere an episode is a game and `done` is the answer.

  Args:
    env: the batch that produced `env_output`.
    env_output: `environments.EnvOutput` of its latest reset() or step().
  """
  mask = getattr(env, 'last_game_over', None)
  return np.asarray(env_output.done if mask is None else mask, bool)


class _LifeTracker:
  """Turns (game over, lives) into the learner's `done` and game statistics."""

  def __init__(self, num_envs, training):
    self._training = training
    self._lives = np.zeros([num_envs], np.int32)
    self._games = environments.EpisodeTracker(num_envs)

  def reset(self, lives):
    """lives: int [N] after reset. Returns EpisodeInfo of zeros."""
    self._lives = np.array(lives, np.int32)
    return self._games.reset()

  def update(self, reward, game_over, lives):
    """Adds one step.

    Args:
      reward: float32 [N].
      game_over: bool [N], the game ended (terminated or truncated). Where
        True, `lives` is already the next game's count.
      lives: int [N] after the step.

    Returns:
      (done bool [N], EpisodeInfo of the games, reset where game_over).
    """
    lives = np.asarray(lives, np.int32)
    # `lives > 0` as in ale-py's own life-loss signal and OpenAI baselines'
    # EpisodicLifeEnv: some games (Q*bert) show 0 lives for a few frames
    # before the game-over signal, and the last life's end is a game over.
    life_lost = (lives < self._lives) & (lives > 0) & ~game_over
    self._lives = lives
    done = game_over | life_lost if self._training else game_over.copy()
    return done, self._games.update(reward, game_over)


# The environments of one game in an AtariVectorBatch. `positions` int64 [n]:
# their rows in the batch; `action_set`: the ale actions the vector env takes;
# `action_table` int32 [num_actions]: agent action -> index in `action_set`.
_SubBatch = collections.namedtuple(
    '_SubBatch', 'name env positions action_set action_table')


class AtariVectorBatch:
  """N Atari environments on ale-py's C++ vector env, as a BatchedEnvironment.

  One `AtariVectorEnv` per distinct game (a vector env runs one ROM); their
  steps run concurrently (send to all, then receive from all) and the results
  are put back in this batch's environment order.

  Attributes:
    num_envs: N.
    num_actions: actions of the (shared) action set.
    level_ids: int32 [N], index of each environment's game in `GAMES`.
    games: list of N `Game`s, the game of each environment.
    last_game_over: bool [N], True where the latest step ended a game (see the
      module docstring); all False after reset().
  """

  def __init__(self, assignments, seed=0, training=True,
               full_action_space=None, max_episode_frames=MAX_EPISODE_FRAMES,
               num_threads=0, noop_max=NOOP_MAX):
    self.num_envs = len(assignments)
    self.games = [a.game for a in assignments]
    self.level_ids = np.array([a.level_id for a in assignments], np.int32)
    self.last_game_over = np.zeros([self.num_envs], bool)
    self._seeds = np.array([seed + a.index for a in assignments], np.int64)
    self._tracker = _LifeTracker(self.num_envs, training)
    full_action_space = _default_full_action_space(
        assignments, full_action_space)

    self._subs = []
    for name in dict.fromkeys(a.game.name for a in assignments):
      positions = np.array(
          [i for i, a in enumerate(assignments) if a.game.name == name],
          np.int64)
      env = ale_vector_env.AtariVectorEnv(
          name, len(positions),
          num_threads=num_threads,
          max_num_frames_per_episode=max_episode_frames,
          repeat_action_probability=0.0,
          full_action_space=full_action_space,
          # The protocol's same-step reset (environments.py); the default
          # NEXT_STEP would spend an extra step returning the reset frame.
          autoreset_mode=gymnasium.vector.AutoresetMode.SAME_STEP,
          img_height=FRAME_SIZE, img_width=FRAME_SIZE, grayscale=True,
          stack_num=FRAME_STACK, frameskip=ACTION_REPEAT, maxpool=True,
          noop_max=noop_max,
          # Life losses are found from `lives` (_LifeTracker): ale's
          # episodic_life restarts the whole game on every life loss, and
          # life_loss_info sets `terminated` on a life loss, which would hide
          # game overs.
          episodic_life=False, life_loss_info=False,
          reward_clipping=False,  # The learner clips; logs keep game points.
          use_fire_reset=False)  # The paper does not press FIRE on reset.
      action_set = tuple(env.ale.get_action_set())
      if full_action_space:
        action_table = full_action_table(action_set)
      else:
        action_table = np.arange(len(action_set), dtype=np.int32)
      self._subs.append(_SubBatch(name, env, positions, action_set,
                                  action_table))

    if not full_action_space:
      if len({sub.action_set for sub in self._subs}) > 1:
        sizes = {sub.name: len(sub.action_set) for sub in self._subs}
        self.close()
        raise ValueError(
            f'These games have different minimal action sets ({sizes} '
            'actions): use full_action_space=True so that an action means '
            'the same in all.')
    self.num_actions = len(self._subs[0].action_table)

  def _gather(self, results):
    """Scatters per-game results into batch order.

    Args:
      results: list, per sub-batch, of (obs uint8 [n_g, 4, 84, 84], reward
        [n_g], game_over bool [n_g], info dict with 'env_id' and 'lives').

    Returns:
      observation uint8 [N, 84, 84, 4], reward float32 [N], game_over bool
      [N], lives int32 [N].
    """
    observation = np.empty((self.num_envs,) + OBSERVATION_SHAPE, np.uint8)
    reward = np.zeros([self.num_envs], np.float32)
    game_over = np.zeros([self.num_envs], bool)
    lives = np.zeros([self.num_envs], np.int32)
    for sub, (obs, rew, over, info) in zip(self._subs, results):
      # env_id maps each returned row to its sub-environment (rows come in
      # order in synchronous mode, but the id is what ale guarantees).
      where = sub.positions[np.asarray(info['env_id'])]
      # ale stacks frames first ([n, 4, 84, 84]); the agent wants them last.
      # cv2.merge interleaves the 4 planes into the [84, 84, 4] destination
      # about 6x faster than numpy's strided transpose copy, which otherwise
      # costs a quarter of the C++ step time.
      for row, position in enumerate(where):
        cv2.merge(tuple(obs[row]), dst=observation[position])
      reward[where] = rew
      game_over[where] = over
      lives[where] = info['lives']
    return observation, reward, game_over, lives

  def reset(self):
    """Starts a new game everywhere (environment k seeded with seed + k)."""
    results = []
    for sub in self._subs:
      obs, info = sub.env.reset(seed=self._seeds[sub.positions])
      results.append((obs, 0, False, info))
    observation, reward, game_over, lives = self._gather(results)
    self.last_game_over = game_over
    return environments.EnvOutput(
        reward=reward, info=self._tracker.reset(lives),
        done=np.zeros([self.num_envs], bool), observation=observation)

  def step(self, actions):
    """actions: int [N] in [0, num_actions). Returns EnvOutput, leading [N]."""
    actions = np.asarray(actions)
    if actions.shape != (self.num_envs,):
      raise ValueError(
          f'actions must have shape [{self.num_envs}], got {actions.shape}.')
    # ale checks the range in a worker thread, where an error only prints and
    # the batch then waits forever for the missing result: check here.
    if actions.min() < 0 or actions.max() >= self.num_actions:
      raise ValueError(f'actions must be in [0, {self.num_actions}), got '
                       f'{actions.tolist()}.')
    # Send to every game first so that all their threads run together.
    for sub in self._subs:
      sub.env.send(sub.action_table[actions[sub.positions]])
    results = []
    for sub in self._subs:
      obs, rew, terminated, truncated, info = sub.env.recv()
      results.append((obs, rew, terminated | truncated, info))
    observation, reward, game_over, lives = self._gather(results)
    done, info = self._tracker.update(reward, game_over, lives)
    self.last_game_over = game_over
    return environments.EnvOutput(reward, info, done, observation)

  def close(self):
    for sub in self._subs:
      sub.env.close()
    # The C++ threads stop when the vector envs are destroyed.
    self._subs = []


def make_batched_environment(games, num_envs, seed=0, training=True,
                             full_action_space=None, first_env_index=0,
                             max_episode_frames=MAX_EPISODE_FRAMES,
                             num_threads=0):
  """N environments with the paper's protocol on ale-py's C++ vector env.

  Args:
    games: list of game names ('pong') or gymnasium ids ('ALE/Pong-v5'); one
      str is one game. Global environment k = first_env_index + i plays
      games[k % len(games)].
    num_envs: N.
    seed: environment k's first game is seeded with seed + k; later games
      continue its own random stream.
    training: a life loss ends the episode (`done`) when True.
    full_action_space: all 18 actions if True, the game's minimal set if
      False; None means True exactly when several distinct games are played.
    first_env_index: global index of this batch's first environment.
    max_episode_frames: frame cap of a game (emulator frames, counted from the
      end of the start no-ops); the game then ends with `done` True.
    num_threads: C++ threads of each game's vector env; 0 lets ale-py pick
      min(environments of that game, CPU cores).

  Returns:
    An `AtariVectorBatch` (the BatchedEnvironment protocol plus
    `last_game_over`). Observations uint8 [N, 84, 84, 4], rewards float32 [N]
    unclipped.
  """
  return AtariVectorBatch(
      assign_games(games, num_envs, first_env_index), seed=seed,
      training=training, full_action_space=full_action_space,
      max_episode_frames=max_episode_frames, num_threads=num_threads)


class LifeLossEpisodes(gymnasium.Wrapper):
  """Ends training episodes on a life loss while the game itself goes on.

  On a life loss (training only) `step` returns terminated=True; the next
  `reset()` without a seed or options then returns the current observation
  and leaves the game running instead of restarting it. A game over or the
  frame cap always ends the episode, and the next reset restarts the game.

  `info` gains 'game_over' (the step ended the game) and 'life_lost'. The
  attribute `game_over` holds the latest step's value and, unlike `info`,
  survives the reset() that a batch calls right after an episode's end.
  """

  def __init__(self, env, training=True, seed=None):
    super().__init__(env)
    self._training = training
    self._seed = seed  # Used by the first reset if that has no seed.
    self._lives = 0
    self._continue = None  # (observation, info) to resume the game with.
    self.game_over = False

  def reset(self, *, seed=None, options=None):
    if self._continue is not None and seed is None and options is None:
      observation, info = self._continue
      self._continue = None
      return observation, dict(info, game_over=False, life_lost=False)
    # The constructor's seed stands in for a missing one on the first reset
    # only: later games continue the environment's random stream.
    if seed is None:
      seed = self._seed
    self._seed = None
    self._continue = None
    observation, info = self.env.reset(seed=seed, options=options)
    self._lives = self.env.unwrapped.ale.lives()
    return observation, dict(info, game_over=False, life_lost=False)

  def step(self, action):
    observation, reward, terminated, truncated, info = self.env.step(action)
    lives = self.env.unwrapped.ale.lives()
    self.game_over = bool(terminated or truncated)
    # Same rule as _LifeTracker (and ale-py's own signal).
    life_lost = 0 < lives < self._lives and not self.game_over
    self._lives = lives
    info = dict(info, game_over=self.game_over, life_lost=life_lost)
    if life_lost and self._training:
      terminated = True
      self._continue = (observation, info)
    else:
      self._continue = None
    return observation, reward, terminated, truncated, info


class _FullActionSet(gymnasium.ActionWrapper):
  """Discrete(18) actions for a game whose legal set is smaller (Skiing)."""

  def __init__(self, env):
    super().__init__(env)
    action_set = [ale_py.Action.__members__[meaning]
                  for meaning in env.unwrapped.get_action_meanings()]
    self._table = full_action_table(action_set)
    self.action_space = spaces.Discrete(NUM_FULL_ACTIONS)

  def action(self, action):
    return int(self._table[action])


def make_gymnasium_env(game, seed=0, training=True, full_action_space=False,
                       max_episode_frames=MAX_EPISODE_FRAMES):
  """One environment with the paper's protocol, from gymnasium wrappers.

  Observation uint8 [84, 84, 4] (oldest frame first), Discrete actions,
  unclipped rewards. A training episode ends on a life loss and the following
  reset() continues the game (`LifeLossEpisodes`); `info['game_over']` tells
  a game's end. 1..30 no-ops start each game.

  Args:
    game: name ('pong') or gymnasium id ('ALE/Pong-v5').
    seed: seeds the first reset() if that passes no seed.
    training: a life loss ends the episode when True.
    full_action_space: all 18 actions if True, else the minimal set.
    max_episode_frames: frame cap of a game (ALE's episode frame count, which
      includes the start no-ops); the game then ends with truncated=True.

  Returns:
    A `gymnasium.Env`.
  """
  gymnasium.register_envs(ale_py)
  game = games_lib.get_game(game)
  env = gymnasium.make(
      game.gym_id,
      frameskip=1,  # AtariPreprocessing repeats actions and max-pools.
      repeat_action_probability=0.0,  # v5 defaults to sticky actions.
      full_action_space=full_action_space,
      max_num_frames_per_episode=max_episode_frames)
  env = wrappers.AtariPreprocessing(
      env, noop_max=NOOP_MAX, frame_skip=ACTION_REPEAT,
      screen_size=FRAME_SIZE,
      # Its life-loss termination is followed by a full reset of the game;
      # LifeLossEpisodes below ends the episode but lets the game go on.
      terminal_on_life_loss=False,
      grayscale_obs=True, scale_obs=False)
  # Zero padding, as ale-py's vector env, so both routes see the same stack.
  env = wrappers.FrameStackObservation(env, FRAME_STACK, padding_type='zero')
  env = wrappers.TransformObservation(
      env, lambda stack: np.ascontiguousarray(np.moveaxis(stack, 0, -1)),
      spaces.Box(0, 255, OBSERVATION_SHAPE, np.uint8))
  if full_action_space and env.action_space.n != NUM_FULL_ACTIONS:
    env = _FullActionSet(env)
  env = LifeLossEpisodes(env, training=training, seed=seed)
  env.action_space.seed(seed)
  return env


class GymnasiumAtariBatch:
  """`GymnasiumBatch` of `make_gymnasium_env`s with game statistics.

  A plain `GymnasiumBatch` restarts its `EpisodeInfo` at every `done`, i.e. at
  every life loss in training; this one reports whole games and sets
  `last_game_over`, as `AtariVectorBatch` does.

  Attributes: as `AtariVectorBatch` (num_envs, num_actions, level_ids, games,
  last_game_over).
  """

  def __init__(self, assignments, seed=0, training=True,
               full_action_space=None, max_episode_frames=MAX_EPISODE_FRAMES):
    full_action_space = _default_full_action_space(
        assignments, full_action_space)
    self._envs = []

    def make_env(i):
      env = make_gymnasium_env(
          assignments[i].game.name, seed=seed + assignments[i].index,
          training=training, full_action_space=full_action_space,
          max_episode_frames=max_episode_frames)
      self._envs.append(env)
      return env

    # GymnasiumBatch seeds local environment i with its seed + i.
    self._batch = environments.GymnasiumBatch(
        make_env, len(assignments), seed=seed + assignments[0].index,
        level_ids=[a.level_id for a in assignments])
    action_sets = {tuple(env.unwrapped.get_action_meanings())
                   for env in self._envs}
    if not full_action_space and len(action_sets) > 1:
      self.close()
      raise ValueError(
          'These games have different minimal action sets: use '
          'full_action_space=True so that an action means the same in all.')
    self.num_envs = self._batch.num_envs
    self.num_actions = self._batch.num_actions
    self.level_ids = self._batch.level_ids
    self.games = [a.game for a in assignments]
    self.last_game_over = np.zeros([self.num_envs], bool)
    self._tracker = environments.EpisodeTracker(self.num_envs)

  def reset(self):
    output = self._batch.reset()
    self.last_game_over = np.zeros([self.num_envs], bool)
    return output._replace(info=self._tracker.reset())

  def step(self, actions):
    output = self._batch.step(actions)
    self.last_game_over = np.array([env.game_over for env in self._envs])
    return output._replace(
        info=self._tracker.update(output.reward, self.last_game_over))

  def close(self):
    for env in self._envs:
      env.close()


def make_gymnasium_batch(games, num_envs, seed=0, training=True,
                         full_action_space=None, first_env_index=0,
                         max_episode_frames=MAX_EPISODE_FRAMES):
  """As `make_batched_environment`, on gymnasium wrappers (pure Python)."""
  return GymnasiumAtariBatch(
      assign_games(games, num_envs, first_env_index), seed=seed,
      training=training, full_action_space=full_action_space,
      max_episode_frames=max_episode_frames)
