"""Tests of the Atari-57 suite: game table and environments' protocol."""


import ale_py
from ale_py import roms
from ale_py import vector_env as ale_vector_env
import numpy as np
import pytest

import atari57
from atari57 import environment as atari_env
from scalable_agent import environments

_SCORE_FIELDS = ('random', 'human', 'impala_deep_multitask',
                 'impala_shallow_experts', 'impala_deep_experts')


def _random_actions(env, seed=0):
  rng = np.random.default_rng(seed)
  while True:
    yield rng.integers(0, env.num_actions, env.num_envs)


def _ale_minimal_action_set_size(game):
  ale = ale_py.ALEInterface()
  ale.setLoggerMode(ale_py.LoggerMode.Error)
  ale.loadROM(roms.get_rom_path(game))
  return len(ale.getMinimalActionSet())


def _is_first_frame_of_game(observation):
  # Both routes fill the frame stack with zeros at a reset: only the newest
  # frame (last channel) is set. Atari screens are never all black.
  return (observation[..., :-1] == 0).all() and observation[..., -1].any()


# Game table.


def test_table_has_57_unique_games():
  assert len(atari57.GAMES) == 57
  assert len(set(atari57.GAME_NAMES)) == 57
  assert atari57.GAME_NAMES == tuple(g.name for g in atari57.GAMES)
  assert atari57.Game._fields == (
      'name', 'gym_id', 'random', 'human', 'impala_deep_multitask',
      'impala_shallow_experts', 'impala_deep_experts')
  for game in atari57.GAMES:
    assert game.gym_id.startswith('ALE/') and game.gym_id.endswith('-v5')
    assert all(isinstance(getattr(game, f), float) for f in _SCORE_FIELDS)
    # Every short name is an ale-py ROM id, which AtariVectorEnv takes.
    assert roms.get_rom_path(game.name) is not None, game.name


def test_table_matches_reference(reference_table):
  rows = reference_table('atari57_scores.csv')
  assert [r['game'] for r in rows] == list(atari57.GAME_NAMES)
  for row, game in zip(rows, atari57.GAMES):
    assert row['gymnasium_id'] == game.gym_id
    for field in _SCORE_FIELDS:
      assert float(row[field]) == getattr(game, field), (game.name, field)


def test_get_game_by_name_and_gym_id():
  pong = atari57.get_game('pong')
  assert pong.gym_id == 'ALE/Pong-v5'
  assert atari57.get_game('ALE/Pong-v5') is pong
  assert atari57.get_game('Pong') is pong
  assert atari57.get_game('ALE/MsPacman-v5').name == 'ms_pacman'
  assert atari57.game_index('alien') == 0
  assert atari57.GAMES[atari57.game_index('zaxxon')].name == 'zaxxon'


def test_unknown_game_names_it_and_close_matches():
  with pytest.raises(ValueError) as error:
    atari57.get_game('mspacman')
  assert "'mspacman'" in str(error.value)
  assert 'ms_pacman' in str(error.value)
  with pytest.raises(ValueError, match='ALE/Breakout-v5|breakout'):
    atari57.get_game('ALE/Breakout-v4')
  with pytest.raises(ValueError, match='Unknown Atari-57 game'):
    atari57.make_batched_environment(['pong', 'tetris'], 2)


# make_batched_environment (ale-py's C++ vector env).


@pytest.mark.parametrize('game', atari57.GAME_NAMES)
def test_every_game_constructs_resets_and_steps(game):
  env = atari57.make_batched_environment([game], 1, num_threads=1)
  try:
    assert env.num_envs == 1
    assert 2 <= env.num_actions <= 18
    np.testing.assert_array_equal(env.level_ids, [atari57.game_index(game)])
    assert env.level_ids.dtype == np.int32
    output = env.reset()
    assert isinstance(output, environments.EnvOutput)
    assert output.observation.shape == (1, 84, 84, 4)
    assert output.observation.dtype == np.uint8
    assert _is_first_frame_of_game(output.observation[0])
    actions = _random_actions(env)
    for _ in range(3):
      output = env.step(next(actions))
      assert output.observation.shape == (1, 84, 84, 4)
      assert output.observation.dtype == np.uint8
      assert output.reward.dtype == np.float32 and output.reward.shape == (1,)
      assert output.done.dtype == bool and output.done.shape == (1,)
      assert output.info.episode_return.dtype == np.float32
      assert output.info.episode_step.dtype == np.int32
  finally:
    env.close()


def test_all_57_games_in_one_multitask_batch():
  env = atari57.make_batched_environment(
      list(atari57.GAME_NAMES), 57, num_threads=1)
  try:
    assert env.num_actions == 18  # Several games: the full action set.
    np.testing.assert_array_equal(env.level_ids, np.arange(57))
    assert [g.name for g in env.games] == list(atari57.GAME_NAMES)
    output = env.reset()
    assert output.observation.shape == (57, 84, 84, 4)
    output = env.step(np.full([57], 17))  # DOWNLEFTFIRE exists everywhere.
    assert output.observation.shape == (57, 84, 84, 4)
    # Each game's frames went to its own row.
    assert len({o.tobytes() for o in output.observation}) == 57
  finally:
    env.close()


@pytest.mark.parametrize('game', ['pong', 'breakout', 'ms_pacman', 'skiing'])
def test_num_actions_is_the_minimal_set_or_18(game):
  minimal = atari57.make_batched_environment([game], 1, num_threads=1)
  full = atari57.make_batched_environment(
      [game], 1, full_action_space=True, num_threads=1)
  try:
    assert minimal.num_actions == _ale_minimal_action_set_size(game)
    assert full.num_actions == 18
  finally:
    minimal.close()
    full.close()


def test_full_action_set_of_skiing_plays_fire_actions_without_fire():
  # ale-py's legal set for Skiing has 9 actions (no FIRE); the full action
  # space must still be the 18 joystick actions in every game.
  skiing = [ale_py.Action(v) for v in (0, 2, 3, 4, 5, 6, 7, 8, 9)]
  table = atari_env.full_action_table(skiing)
  assert table.shape == (18,) and table.dtype == np.int32
  played = [skiing[i].name for i in table]
  assert played[:10] == ['NOOP', 'NOOP', 'UP', 'RIGHT', 'LEFT', 'DOWN',
                         'UPRIGHT', 'UPLEFT', 'DOWNRIGHT', 'DOWNLEFT']
  assert played[10:] == ['UP', 'RIGHT', 'LEFT', 'DOWN', 'UPRIGHT', 'UPLEFT',
                         'DOWNRIGHT', 'DOWNLEFT']
  everything = list(ale_py.Action.__members__.values())
  np.testing.assert_array_equal(atari_env.full_action_table(everything),
                                np.arange(18))
  env = atari57.make_gymnasium_env('skiing', full_action_space=True)
  assert env.action_space.n == 18
  env.reset()
  env.step(17)
  env.close()


def test_round_robin_games_and_level_ids():
  games = ['pong', 'ALE/Breakout-v5', 'alien']
  env = atari57.make_batched_environment(games, 4, first_env_index=2,
                                         num_threads=1)
  try:
    # Global environments 2, 3, 4, 5 play games[k % 3].
    assert [g.name for g in env.games] == ['alien', 'pong', 'breakout',
                                          'alien']
    np.testing.assert_array_equal(
        env.level_ids, [atari57.game_index(g) for g in
                        ('alien', 'pong', 'breakout', 'alien')])
    assert env.num_actions == 18
    output = env.reset()
    assert output.observation.shape == (4, 84, 84, 4)
    output = env.step(np.array([0, 17, 3, 5]))
    assert output.observation.shape == (4, 84, 84, 4)
  finally:
    env.close()
  # Two copies of one game keep its minimal set; distinct games refuse it.
  env = atari57.make_batched_environment(['pong', 'pong'], 2, num_threads=1)
  assert env.num_actions == 6
  env.close()
  with pytest.raises(ValueError, match='full_action_space'):
    atari57.make_batched_environment(['pong', 'breakout'], 2,
                                     full_action_space=False)


def test_matches_ale_vector_env_routing_and_layout():
  """Rows go back to the right environment, frames stacked last."""
  env = atari57.make_batched_environment(['pong', 'breakout'], 4, seed=10,
                                         num_threads=1)
  raw = {
      game: ale_vector_env.AtariVectorEnv(
          game, 2, num_threads=1, full_action_space=True,
          autoreset_mode='SameStep', reward_clipping=False,
          use_fire_reset=False)
      for game in ('pong', 'breakout')}
  try:
    output = env.reset()
    # Environment k is seeded with 10 + k: pong has k = 0, 2.
    raw_obs = {'pong': raw['pong'].reset(seed=np.array([10, 12]))[0],
               'breakout': raw['breakout'].reset(seed=np.array([11, 13]))[0]}
    actions = _random_actions(env, seed=1)
    for _ in range(20):
      for k, (game, row) in enumerate([('pong', 0), ('breakout', 0),
                                       ('pong', 1), ('breakout', 1)]):
        np.testing.assert_array_equal(
            output.observation[k], np.transpose(raw_obs[game][row], (1, 2, 0)))
      a = next(actions)
      output = env.step(a)
      a = a.astype(np.int32)
      raw_obs = {'pong': raw['pong'].step(a[[0, 2]])[0],
                 'breakout': raw['breakout'].step(a[[1, 3]])[0]}
  finally:
    env.close()
    for r in raw.values():
      r.close()


def test_same_step_autoreset_at_the_frame_cap():
  # A cap of 200 frames is 50 agent steps of 4 frames.
  env = atari57.make_batched_environment(['pong'], 2, max_episode_frames=200,
                                         num_threads=1)
  try:
    env.reset()
    actions = _random_actions(env)
    total = np.zeros([2], np.float32)
    for step in range(1, 50):
      output = env.step(next(actions))
      total += output.reward
      assert not output.done.any()
      np.testing.assert_array_equal(output.info.episode_step, [step, step])
    output = env.step(next(actions))
    total += output.reward
    assert output.done.all() and env.last_game_over.all()
    # info describes the finished episode ...
    np.testing.assert_array_equal(output.info.episode_step, [50, 50])
    np.testing.assert_array_equal(output.info.episode_return, total)
    # ... while the observation already starts the next one.
    for observation in output.observation:
      assert _is_first_frame_of_game(observation)
    output = env.step(next(actions))
    assert not output.done.any() and not env.last_game_over.any()
    np.testing.assert_array_equal(output.info.episode_step, [1, 1])
    np.testing.assert_array_equal(output.info.episode_return, output.reward)
  finally:
    env.close()


def test_game_over_resets_on_the_same_step():
  env = atari57.make_batched_environment(['breakout'], 1, training=False,
                                         num_threads=1)
  try:
    env.reset()
    actions = _random_actions(env)
    total, steps = 0.0, 0
    while True:
      output = env.step(next(actions))
      total += output.reward[0]
      steps += 1
      if output.done[0]:
        break
      assert steps < 5000, 'a random Breakout game should end sooner'
    assert env.last_game_over[0]
    assert output.info.episode_step[0] == steps
    assert output.info.episode_return[0] == total
    assert _is_first_frame_of_game(output.observation[0])
  finally:
    env.close()


def test_noop_starts_differ_across_seeds():
  # Alien's first frames change from one frame to the next; Pong's and
  # Breakout's do not, so their start frames would hide the no-ops.
  def first_frames(seed):
    env = atari57.make_batched_environment(['alien'], 4, seed=seed,
                                           num_threads=1)
    frames = env.reset().observation[..., -1]
    env.close()
    return frames
  frames = first_frames(0)
  assert len({f.tobytes() for f in frames}) > 1
  np.testing.assert_array_equal(frames, first_frames(0))  # Reproducible.
  assert (frames != first_frames(100)).any()


def _run_breakout(training, num_steps):
  """Returns done, last_game_over (bool [T]), info and first-frame flags."""
  env = atari57.make_batched_environment(['breakout'], 1, seed=3,
                                         training=training, num_threads=1)
  try:
    env.reset()
    actions = _random_actions(env, seed=4)
    rows = []
    for _ in range(num_steps):
      output = env.step(next(actions))
      rows.append((output.done[0], env.last_game_over[0],
                   output.info.episode_return[0], output.info.episode_step[0],
                   output.reward[0],
                   _is_first_frame_of_game(output.observation[0])))
  finally:
    env.close()
  return [np.array(column) for column in zip(*rows)]


def test_life_loss_ends_training_episodes_only():
  num_steps = 400
  (done, game_over, returns, steps, rewards,
   first_frame) = _run_breakout(True, num_steps)
  life_lost = done & ~game_over
  # Breakout has 5 lives: the first ends a training episode mid-game.
  assert life_lost.any() and game_over.any()
  first_done = np.flatnonzero(done)[0]
  assert life_lost[first_done]
  # The game went on: no reset after a life loss ...
  assert not first_frame[life_lost].any()
  assert first_frame[game_over].all()
  # ... and the game statistics keep counting across it.
  assert steps[first_done + 1] == steps[first_done] + 1
  first_over = np.flatnonzero(game_over)[0]
  assert returns[first_over] == rewards[:first_over + 1].sum()
  assert steps[first_over] == first_over + 1
  assert np.flatnonzero(life_lost[:first_over]).size == 4

  # Evaluation: the same seed and actions play the same game (life losses
  # don't reset in training either), but only its end is a `done`.
  (eval_done, eval_game_over, eval_returns, _, eval_rewards,
   _) = _run_breakout(False, num_steps)
  np.testing.assert_array_equal(eval_rewards, rewards)
  np.testing.assert_array_equal(eval_done, game_over)
  np.testing.assert_array_equal(eval_game_over, game_over)
  np.testing.assert_array_equal(eval_returns, returns)


def test_game_over_mask():
  env = atari57.make_batched_environment(['breakout'], 1, num_threads=1)
  output = env.reset()
  env.last_game_over = np.array([True])
  np.testing.assert_array_equal(atari57.game_over_mask(env, output), [True])
  env.close()
  # Environments without the attribute: every episode is a game.
  plain = environments.GymnasiumBatch(
      lambda i: atari57.make_gymnasium_env('pong'), 1)
  output = plain.reset()._replace(done=np.array([True]))
  np.testing.assert_array_equal(atari57.game_over_mask(plain, output), [True])
  plain.close()


def test_rewards_are_not_clipped():
  # Alien pays 10 points per egg within a few random steps.
  env = atari57.make_batched_environment(['alien'], 2, num_threads=1)
  try:
    env.reset()
    actions = _random_actions(env)
    rewards = [env.step(next(actions)).reward for _ in range(100)]
    assert np.max(rewards) >= 10
  finally:
    env.close()


def test_bad_actions_raise():
  env = atari57.make_batched_environment(['pong'], 2, num_threads=1)
  try:
    env.reset()
    with pytest.raises(ValueError, match='shape'):
      env.step(np.zeros([3], np.int32))
    with pytest.raises(ValueError, match='in \\[0, 6\\)'):
      env.step(np.array([0, 6]))
    env.step(np.array([0, 5]))  # Still usable.
  finally:
    env.close()


# The gymnasium route.


def test_gymnasium_env_protocol():
  env = atari57.make_gymnasium_env('breakout', seed=0)
  try:
    assert env.observation_space.shape == (84, 84, 4)
    assert env.observation_space.dtype == np.uint8
    assert env.action_space.n == _ale_minimal_action_set_size('breakout')
    observation, _ = env.reset()
    assert observation.shape == (84, 84, 4) and observation.dtype == np.uint8
    assert _is_first_frame_of_game(observation)
    observation, reward, _, _, info = env.step(1)
    assert observation.shape == (84, 84, 4) and observation.dtype == np.uint8
    assert isinstance(reward, float)
    assert info['game_over'] is False
    # No sticky actions, and ale's frame skip is off (AtariPreprocessing
    # repeats the action instead).
    ale = env.unwrapped.ale
    assert ale.getFloat('repeat_action_probability') == 0.0
    assert env.unwrapped._frameskip == 1
  finally:
    env.close()
  full = atari57.make_gymnasium_env('breakout', full_action_space=True)
  assert full.action_space.n == 18
  full.close()


def test_both_routes_preprocess_identically():
  # Pong's screen stays still during the start no-ops and the first NOOP
  # steps, so the two routes' different no-op draws cannot show: their
  # frames (grey, max-pool, 84x84 INTER_AREA, zero-padded stack) must agree
  # bit for bit.
  fast = atari57.make_batched_environment(['pong'], 2, num_threads=1)
  slow = atari57.make_gymnasium_batch(['pong'], 2)
  try:
    np.testing.assert_array_equal(fast.reset().observation,
                                  slow.reset().observation)
    for _ in range(3):
      noop = np.zeros([2], np.int32)
      np.testing.assert_array_equal(fast.step(noop).observation,
                                    slow.step(noop).observation)
  finally:
    fast.close()
    slow.close()


def test_gymnasium_route_has_the_same_protocol():
  env = atari57.make_gymnasium_batch(['breakout'], 2, seed=0, training=True)
  try:
    assert env.num_actions == 4
    np.testing.assert_array_equal(env.level_ids,
                                  [atari57.game_index('breakout')] * 2)
    output = env.reset()
    assert output.observation.shape == (2, 84, 84, 4)
    assert output.observation.dtype == np.uint8
    actions = _random_actions(env)
    life_losses = 0
    game_overs = 0
    previous = output
    for _ in range(1000):
      output = env.step(next(actions))
      life_lost = output.done & ~env.last_game_over
      for i in np.flatnonzero(life_lost):
        # Training episode over, game on: statistics keep counting, frames
        # are not reset.
        assert (output.info.episode_step[i] ==
                previous.info.episode_step[i] + 1)
        assert not _is_first_frame_of_game(output.observation[i])
      for i in np.flatnonzero(env.last_game_over):
        assert output.done[i]
        assert _is_first_frame_of_game(output.observation[i])
      life_losses += life_lost.sum()
      game_overs += env.last_game_over.sum()
      if game_overs and life_losses >= 4:
        break
      previous = output
    assert game_overs and life_losses >= 4
  finally:
    env.close()


def test_gymnasium_evaluation_ignores_life_losses():
  env = atari57.make_gymnasium_batch(['breakout'], 1, training=False)
  try:
    env.reset()
    actions = _random_actions(env)
    for _ in range(1000):
      output = env.step(next(actions))
      np.testing.assert_array_equal(output.done, env.last_game_over)
      if output.done[0]:
        break
    assert output.done[0]
    assert _is_first_frame_of_game(output.observation[0])
  finally:
    env.close()


def test_gymnasium_multitask_batch_round_robin():
  env = atari57.make_gymnasium_batch(['pong', 'breakout'], 3,
                                     first_env_index=1)
  try:
    assert [g.name for g in env.games] == ['breakout', 'pong', 'breakout']
    assert env.num_actions == 18
    output = env.reset()
    assert output.observation.shape == (3, 84, 84, 4)
    assert env.step(np.array([17, 0, 3])).observation.shape == (3, 84, 84, 4)
  finally:
    env.close()
