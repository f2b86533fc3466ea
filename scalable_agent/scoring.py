"""Human-normalised scores: the headline numbers of DMLab-30 and Atari-57.

One module for every suite so that every report (training logs, evaluation
scripts, tests against the paper) computes the same numbers the same way.

  human_normalized_score(r) = 100 * (r - random) / (human - random)

The reference scores and the headline statistic are the suite's own
(`suites.Suite.references`, `Suite.headline`):

  * DMLab-30 (IMPALA paper, Table 3): the mean over the 30 levels of that
    score capped at 100 from above only (a level played better than humans
    counts as 100; one played worse than random with its negative score).
    Returns are reported on the test levels: returns keyed by a train level
    name count for its test name.
  * Atari-57 (IMPALA paper, Table 4): the median over the 57 games. The
    paper's means do not reproduce from its own per-game table, so the median
    is the headline; the mean is available for completeness.

A missing level or game is an error: silently averaging over fewer levels gives
a number that cannot be compared with anything.
"""

import collections
import difflib
import numbers

import numpy as np

# Headline numbers of one evaluation of a suite.
#   suite: the suite's name ('dmlab30', 'atari57').
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


def level_scores(suite, returns):
  """Per-level human-normalised scores of a whole suite.

  Args:
    suite: a `suites.Suite` with reference scores, or its name.
    returns: mapping level name -> mean episode return (a number) or the
      episode returns (a non-empty sequence, averaged here). Any name the
      suite's `reference_name` understands (Atari: 'pong' or 'ALE/Pong-v5';
      DMLab-30: train or test names, with or without the
      `contributed/dmlab30/` prefix). Every level must be present, once.

  Returns:
    dict reference name -> uncapped score (percent), in table order.

  Raises:
    ValueError: a level is unknown, given twice (e.g. under its train and its
      test name), or missing; the message names the levels.
  """
  from scalable_agent import suites  # pylint: disable=g-import-not-at-top
  suite = suites.get(suite)
  references = suite.references()
  if not references:
    raise ValueError(f'The {suite.name} suite has no reference scores.')
  kind = f'{suite.title} levels'
  mean_returns = {}
  given_as = {}
  unknown = []
  for name, value in returns.items():
    try:
      reference = suite.reference_name(name)
    except ValueError:
      reference = None
    if reference not in references:
      unknown.append(repr(name) + _closest(name, suite.known_names()))
      continue
    if reference in mean_returns:
      raise ValueError(f'{reference!r} is given twice (as '
                       f'{given_as[reference]!r} and {name!r}).')
    given_as[reference] = name
    mean_returns[reference] = _mean_return(name, value)
  if unknown:
    raise ValueError(f'Unknown {kind}: {", ".join(unknown)}.')
  missing = [n for n in references if n not in mean_returns]
  if missing:
    raise ValueError(
        f'Returns are missing for {len(missing)} of the {len(references)} '
        f'{kind}: {", ".join(missing)}. The suite score is defined over all '
        f'{len(references)}.')
  return {name: human_normalized_score(mean_returns[name], ref.random,
                                       ref.human)
          for name, ref in references.items()}


def suite_score(suite, returns):
  """All headline numbers of one evaluation of a suite.

  Args:
    suite: a `suites.Suite` with reference scores, or its name ('atari57',
      'dmlab30').
    returns: as for `level_scores`.

  Returns:
    SuiteScore. `headline` is the paper's number for the suite (its
    `Suite.headline` field): the capped mean for DMLab-30, the median for
    Atari-57.
  """
  from scalable_agent import suites  # pylint: disable=g-import-not-at-top
  suite = suites.get(suite)
  per_level = level_scores(suite, returns)
  scores = np.array(list(per_level.values()))
  numbers = dict(median=float(np.median(scores)),
                 mean=float(np.mean(scores)),
                 mean_capped=float(np.mean(np.minimum(scores, 100.))))
  return SuiteScore(suite=suite.name, headline=numbers[suite.headline],
                    per_level=per_level, **numbers)


def paper_suite_score(suite, key):
  """`SuiteScore` of one of the paper's columns, from its own per-level
  returns (e.g. 'impala_deep_experts': the Atari-57 median 191.8%)."""
  from scalable_agent import suites  # pylint: disable=g-import-not-at-top
  suite = suites.get(suite)
  suite.paper_column_title(key)  # Validates the key.
  return suite_score(suite, {name: reference.paper[key] for name, reference
                             in suite.references().items()})
