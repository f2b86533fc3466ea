"""The Atari-57 suite: games, reference scores and environments."""

from atari57.environment import AtariVectorBatch
from atari57.environment import game_over_mask
from atari57.environment import GymnasiumAtariBatch
from atari57.environment import make_batched_environment
from atari57.environment import make_gymnasium_batch
from atari57.environment import make_gymnasium_env
from atari57.games import Game
from atari57.games import game_index
from atari57.games import GAME_NAMES
from atari57.games import GAMES
from atari57.games import get_game
