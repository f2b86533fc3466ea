"""DMLab-30 suite: level table, action set and the DeepMind Lab adapter.

The tables (`dmlab30.levels`) are re-exported here and import nothing beyond
numpy. The environment adapter lives in `dmlab30.environment`; import it
explicitly: it pulls in gymnasium and the agent's instruction hashing, and
DeepMind Lab itself is only imported when an environment is created.
"""

from dmlab30.levels import ACTION_NAMES
from dmlab30.levels import ACTION_SET
from dmlab30.levels import get_level
from dmlab30.levels import HOLD_OUT_LEVELS
from dmlab30.levels import Level
from dmlab30.levels import LEVEL_NAMES
from dmlab30.levels import LEVEL_PREFIX
from dmlab30.levels import level_index
from dmlab30.levels import LEVELS
from dmlab30.levels import NUM_ACTIONS
from dmlab30.levels import PSYCHLAB_DATASET_LEVELS
from dmlab30.levels import TEST_LEVEL_NAMES
from dmlab30.levels import TRAIN_TO_TEST
