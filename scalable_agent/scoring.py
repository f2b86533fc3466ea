"""Human-normalised scores: the headline numbers of DMLab-30 and Atari-57.

One module for both suites so that every report (training logs, evaluation
scripts, tests against the paper) computes the same numbers the same way.

  human_normalized_score(r) = 100 * (r - random) / (human - random)

DMLab-30 (IMPALA paper, Table 3): the mean over the 30 levels of that score
capped at 100 from above only (a level played better than humans counts as
100; a level played worse than random counts with its negative score). Returns
are reported on the test levels: returns keyed by a train level name are
renamed to its test name first.

Atari-57 (IMPALA paper, Table 4): the median over the 57 games. The paper's
means do not reproduce from its own per-game table, so the median is the
headline; the mean is available for completeness.

A missing level or game is an error: silently averaging over fewer levels gives
a number that cannot be compared with anything.

The reference tables are the suite packages' own (`dmlab30.LEVELS`,
`atari57.GAMES`); they are imported when first needed, so that importing this
module costs nothing and a suite's dependencies are only needed to score it.
"""

import collections
import difflib
import numbers

import numpy as np

DMLAB30 = 'dmlab30'
ATARI57 = 'atari57'
SUITES = (DMLAB30, ATARI57)

# Headline numbers of one evaluation of a suite.
#   suite: 'dmlab30' or 'atari57'.
#   headline: the paper's headline number: mean_capped for DMLab-30, median
#     for Atari-57 (percent).
#   median, mean: over all levels/games of the uncapped scores (percent).
#   mean_capped: mean of min(score, 100) (percent).
#   per_level: dict name -> uncapped human-normalised score, in table order;
#     names are DMLab-30 test level names or Atari short game names.
SuiteScore = collections.namedtuple(
    'SuiteScore', 'suite headline median mean mean_capped per_level')

def human_normalized_score(mean_return, random, human):
  """100 * (mean_return - random) / (human - random).

  Args:
    mean_return: float or array, the agent's mean episode return.
    random: float, the random agent's return on the same level/game.
    human: float, the human tester's return.

  Returns:
    float (or array shaped like `mean_return`), percent of the way from random
    to human play: 0 is random, 100 human level, negative below random.
  """
  if human == random:
    raise ValueError(
        f'human ({human}) and random ({random}) scores are equal: the '
        'normalised score is undefined.')
  return 100. * (mean_return - random) / (human - random)


def _mean_return(name, value):
  """A return, or the mean of a non-empty sequence of episode returns."""
  if isinstance(value, numbers.Real):
    return float(value)
  values = np.asarray(value, np.float64)
  if values.ndim == 0:
    return float(values)
  if values.size == 0:
    raise ValueError(f'No episode returns for {name!r}.')
  return float(values.mean())


def _closest(name, candidates):
  matches = difflib.get_close_matches(str(name), candidates, n=3, cutoff=0.6)
  return f' (did you mean {", ".join(map(repr, matches))}?)' if matches else ''


# DMLab-30.


def _mean_returns_in_table_order(returns, index_of, table, table_names,
                                 candidates, kind):
  """Matches named returns to a suite's table; every entry exactly once.

  Args:
    returns: mapping name -> mean return or episode returns.
    index_of: name -> index in `table`, or None for an unknown name.
    table: the suite's entries (levels or games).
    table_names: canonical name of each entry, for messages.
    candidates: names to suggest for an unknown name.
    kind: e.g. 'DMLab-30 levels', for messages.

  Returns:
    list of mean returns, one per table entry, in table order.

  Raises:
    ValueError: a name is unknown, an entry is given twice (under two names)
      or missing; the message names them.
  """
  returns_by_index = {}
  unknown = []
  for name, value in returns.items():
    index = index_of(name)
    if index is None:
      unknown.append(repr(name) + _closest(name, candidates))
      continue
    if index in returns_by_index:
      raise ValueError(
          f'{table_names[index]!r} is given twice (as '
          f'{returns_by_index[index][0]!r} and {name!r}).')
    returns_by_index[index] = (name, _mean_return(name, value))
  if unknown:
    raise ValueError(f'Unknown {kind}: {", ".join(unknown)}.')
  missing = [table_names[i] for i in range(len(table))
             if i not in returns_by_index]
  if missing:
    raise ValueError(
        f'Returns are missing for {len(missing)} of the {len(table)} {kind}: '
        f'{", ".join(missing)}. The suite score is defined over all '
        f'{len(table)}.')
  return [returns_by_index[i][1] for i in range(len(table))]


def dmlab30_scores(returns_by_level):
  """Per-level human-normalised scores of DMLab-30.

  Args:
    returns_by_level: mapping level name -> mean episode return (a number) or
      the episode returns themselves (a non-empty sequence, averaged here).
      Names may be train or test names, with or without the
      `contributed/dmlab30/` prefix; train names are mapped to test names.
      All 30 levels must be present, each once.

  Returns:
    dict test level name -> uncapped score (percent), in `dmlab30.LEVELS`
    order.

  Raises:
    ValueError: a level is unknown, given twice (e.g. under its train and its
      test name), or missing; the message names the levels.
  """
  from dmlab30 import levels as levels_lib  # pylint: disable=g-import-not-at-top

  def index_of(name):
    try:
      return levels_lib.level_index(name)
    except ValueError:
      return None

  test_names = [level.test_name for level in levels_lib.LEVELS]
  mean_returns = _mean_returns_in_table_order(
      returns_by_level, index_of, levels_lib.LEVELS, test_names,
      levels_lib.LEVEL_NAMES + levels_lib.TEST_LEVEL_NAMES, 'DMLab-30 levels')
  return {
      level.test_name: human_normalized_score(r, level.random, level.human)
      for level, r in zip(levels_lib.LEVELS, mean_returns)
  }


def dmlab30_mean_capped(returns_by_level):
  """The DMLab-30 headline: mean over 30 levels of min(score, 100), percent.

  Only capped from above: scores below random stay negative.
  """
  scores = np.array(list(dmlab30_scores(returns_by_level).values()))
  return float(np.mean(np.minimum(scores, 100.)))


def dmlab30_mean_uncapped(returns_by_level):
  """Mean over the 30 levels of the uncapped scores, percent."""
  return float(np.mean(list(dmlab30_scores(returns_by_level).values())))


# Atari-57.


def _atari_games():
  """`atari57.GAMES`: records with fields name, gym_id, random, human, ..."""
  import atari57  # pylint: disable=g-import-not-at-top
  games = tuple(atari57.GAMES)
  if len(games) != 57:
    raise ValueError(f'The Atari-57 table has {len(games)} games, not 57.')
  return games


def atari57_scores(returns_by_game):
  """Per-game human-normalised scores of Atari-57.

  Args:
    returns_by_game: mapping game -> mean episode return (a number) or the
      episode returns (a non-empty sequence, averaged here). Games are named
      by their short name ('alien', 'montezuma_revenge', ...; the `game`
      column of atari57/scores.csv) or by their gymnasium id
      ('ALE/Alien-v5'). All 57 games must be present, each once.

  Returns:
    dict short game name -> uncapped score (percent), in table order.

  Raises:
    ValueError: a game is unknown, given twice, or missing.
  """
  games = _atari_games()
  # Short names and gymnasium ids, case-insensitively (as atari57.get_game).
  index_by_name = {}
  for i, game in enumerate(games):
    index_by_name[game.name.lower()] = i
    index_by_name[game.gym_id.lower()] = i
  mean_returns = _mean_returns_in_table_order(
      returns_by_game,
      lambda name: index_by_name.get(str(name).strip().lower()), games,
      [g.name for g in games], [g.name for g in games], 'Atari-57 games')
  return {
      game.name: human_normalized_score(r, game.random, game.human)
      for game, r in zip(games, mean_returns)
  }


def atari57_median(returns_by_game):
  """The Atari-57 headline: median human-normalised score, percent."""
  return float(np.median(list(atari57_scores(returns_by_game).values())))


def atari57_mean(returns_by_game):
  """Mean human-normalised score over the 57 games, percent (uncapped)."""
  return float(np.mean(list(atari57_scores(returns_by_game).values())))


# Both suites.


def suite_score(suite, returns):
  """All headline numbers of one evaluation of a suite.

  Args:
    suite: 'dmlab30' or 'atari57'.
    returns: mapping level/game name -> mean return or episode returns, as
      for `dmlab30_scores` / `atari57_scores`.

  Returns:
    SuiteScore. `headline` is the paper's number for the suite: the capped
    mean for DMLab-30, the median for Atari-57.
  """
  if suite == DMLAB30:
    per_level = dmlab30_scores(returns)
  elif suite == ATARI57:
    per_level = atari57_scores(returns)
  else:
    raise ValueError(f'Unknown suite {suite!r}; expected one of {SUITES}.')
  scores = np.array(list(per_level.values()))
  mean_capped = float(np.mean(np.minimum(scores, 100.)))
  median = float(np.median(scores))
  return SuiteScore(
      suite=suite,
      headline=mean_capped if suite == DMLAB30 else median,
      median=median,
      mean=float(np.mean(scores)),
      mean_capped=mean_capped,
      per_level=per_level)
