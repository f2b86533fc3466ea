"""The 57 Atari games of the IMPALA paper and their reference scores.

The table is `scores.csv`, shipped next to this module (a copy of the project's
reference table): random and human scores (DQN Zoo), and the paper's per-game
returns after 200M frames (Table C.1) for IMPALA deep multi-task, shallow
experts and deep experts.

A game's short `name` is also its ALE ROM id (snake_case, e.g. 'ms_pacman'),
which is what `ale_py.vector_env.AtariVectorEnv` takes; `gym_id` is the
gymnasium id ('ALE/MsPacman-v5').
"""

import collections
import csv
import difflib
import importlib.resources
import io

# One row of the table. Scores are floats (episode returns in game points).
Game = collections.namedtuple(
    'Game', 'name gym_id random human impala_deep_multitask '
    'impala_shallow_experts impala_deep_experts')

_SCORES_FILE = 'scores.csv'
_SCORE_COLUMNS = ('random', 'human', 'impala_deep_multitask',
                  'impala_shallow_experts', 'impala_deep_experts')


def _read_games():
  """Reads the table; the order of `GAMES` is the CSV's (alphabetical)."""
  # importlib.resources works from an installed wheel as well as from a
  # source checkout, where the file simply sits next to this module.
  text = importlib.resources.files(__package__).joinpath(
      _SCORES_FILE).read_text(encoding='utf-8')
  games = []
  for row in csv.DictReader(io.StringIO(text)):
    games.append(Game(
        name=row['game'],
        gym_id=row['gymnasium_id'],
        **{column: float(row[column]) for column in _SCORE_COLUMNS}))
  return tuple(games)


GAMES = _read_games()
GAME_NAMES = tuple(game.name for game in GAMES)

# Both the short name and the gymnasium id resolve, case-insensitively.
_BY_KEY = {}
for _index, _game in enumerate(GAMES):
  _BY_KEY[_game.name.lower()] = _index
  _BY_KEY[_game.gym_id.lower()] = _index
del _index, _game


def game_index(name):
  """Index of a game in `GAMES` (its level id), from its name or gym id."""
  index = _BY_KEY.get(str(name).strip().lower())
  if index is None:
    candidates = list(GAME_NAMES) + [game.gym_id for game in GAMES]
    close = difflib.get_close_matches(str(name), candidates, n=5, cutoff=0.5)
    # Matching the lower-cased key catches 'Ms_Pacman'-like spellings that
    # difflib's case-sensitive ratio would rank low.
    close += [GAMES[_BY_KEY[key]].name for key in difflib.get_close_matches(
        str(name).lower(), list(_BY_KEY), n=5, cutoff=0.5)]
    close = list(dict.fromkeys(close))  # Deduplicated, order kept.
    hint = (f' Close matches: {", ".join(close)}.' if close else
            ' No close match.')
    raise ValueError(
        f'Unknown Atari-57 game {name!r}.{hint} Use a short name such as '
        f"'pong' or a gymnasium id such as 'ALE/Pong-v5' (atari57.GAME_NAMES "
        'lists all 57).')
  return index


def get_game(name):
  """The `Game` called `name` ('pong' or 'ALE/Pong-v5'); ValueError if none."""
  return GAMES[game_index(name)]
