"""The score files of an evaluation: scores.csv and scores.json.

`evaluate` writes them (`write_results`), `report` reads them back
(`load_score_file`); the format lives here so that the two agree.

    scores.csv    one row per episode: level, episode, return, length (agent
                  steps), frames (environment frames)
    scores.json   `result_to_json`: the episode returns and lengths per level,
                  their means, the human-normalised scores, the protocol and
                  the suite's headline

A report uses only the episode returns of a scores.json and recomputes every
score with `scoring`, so that it never disagrees with it.
"""

import collections
import csv
import json
import os

import numpy as np

from scalable_agent import scoring
from scalable_agent import suites

# What `evaluate.evaluate` returns, and what scores.json holds.
#   suite: the suite's name ('atari57', 'dmlab30', 'gymnasium').
#   level: the --level evaluated ('atari57', 'pong', ...).
#   checkpoint: the checkpoint path restored, or None (untrained agent).
#   torso: the agent's torso.
#   episodes: dict level -> list of episode returns, in the suite's order;
#     levels are Atari short game names and DMLab-30 test level names.
#   lengths: dict level -> list of episode lengths in agent steps.
#   mean_return: dict level -> mean episode return.
#   human_normalized: dict level -> human-normalised score in percent (empty
#     for suites without reference scores).
#   paper_column: the paper's IMPALA column compared against (see
#     `Suite.default_paper_column`), or None.
#   suite_score: `scoring.SuiteScore` when every level of the suite was
#     evaluated, else None.
#   max_episode_frames: the episode frame cap used (Atari), or None for the
#     protocol's.
#   elapsed_s: wall-clock seconds of the evaluation.
#   skipped: dict level -> why it was not played (it cannot run on the
#     machine that evaluated, e.g. DMLab files missing); None: none skipped.
#     Skipped levels have no score, and the suite then has no headline.
EvaluationResult = collections.namedtuple(
    'EvaluationResult',
    'suite level checkpoint torso episodes lengths mean_return '
    'human_normalized paper_column suite_score max_episode_frames elapsed_s '
    'skipped', defaults=(None,))

# One score file as a report uses it (`load_score_file`).
#   path, label: file and its column title.
#   suite: its `suites.Suite` (one with reference scores); level: the
#     --level evaluated.
#   checkpoint, torso, max_episode_frames: from the file, for the notes.
#   episodes: dict level -> list of returns (reference names, suite order).
#   mean_return: dict level -> mean return.
#   suite_score: `scoring.SuiteScore` if every level is there, else None.
#   skipped: dict level -> why the evaluation did not play it ({}: none).
ScoreFile = collections.namedtuple(
    'ScoreFile', 'path label suite level checkpoint torso max_episode_frames '
    'episodes mean_return suite_score skipped', defaults=({},))


# Writing.


def result_to_json(result):
  """`EvaluationResult` -> the dict scores.json holds."""
  suite_score = None
  if result.suite_score is not None:
    suite_score = {
        'headline': result.suite_score.headline,
        'median': result.suite_score.median,
        'mean': result.suite_score.mean,
        'mean_capped': result.suite_score.mean_capped,
    }
  return {
      'suite': result.suite,
      'level': result.level,
      'checkpoint': result.checkpoint,
      'torso': result.torso,
      'protocol': suites.get(result.suite).protocol(
          result.max_episode_frames),
      'max_episode_frames': result.max_episode_frames,
      'episodes': result.episodes,
      'lengths': result.lengths,
      'mean_return': result.mean_return,
      'human_normalized': result.human_normalized,
      'paper_column': result.paper_column,
      # The paper's headline statistic: DMLab-30 mean capped, Atari median.
      'headline': None if suite_score is None else suite_score['headline'],
      'suite_score': suite_score,
      'elapsed_s': result.elapsed_s,
      'skipped': dict(result.skipped or {}),
  }


def write_results(result, output_dir):
  """Writes scores.csv and scores.json; returns their paths."""
  os.makedirs(output_dir, exist_ok=True)
  csv_path = os.path.join(output_dir, 'scores.csv')
  json_path = os.path.join(output_dir, 'scores.json')
  with open(csv_path, 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(['level', 'episode', 'return', 'length', 'frames'])
    repeats = suites.get(result.suite).num_action_repeats
    for name, returns in result.episodes.items():
      for i, (episode_return, length) in enumerate(
          zip(returns, result.lengths[name])):
        writer.writerow([name, i, repr(float(episode_return)), length,
                         length * repeats])
  with open(json_path, 'w') as f:
    json.dump(result_to_json(result), f, indent=1)
    f.write('\n')
  return csv_path, json_path


# Reading.


def _default_label(path):
  path = os.path.abspath(path)
  stem = os.path.splitext(os.path.basename(path))[0]
  if stem == 'scores':
    return os.path.basename(os.path.dirname(path)) or 'ours'
  return stem


def load_score_file(path, label=None):
  """Reads a scores.json of `evaluate` into a `ScoreFile`.

  Raises:
    ValueError: not a score file of a suite with reference scores.
  """
  with open(path) as f:
    try:
      data = json.load(f)
    except json.JSONDecodeError as e:
      raise ValueError(f'{path} is not a JSON score file: {e}.') from e
  if not isinstance(data, dict) or 'episodes' not in data:
    raise ValueError(f'{path} has no "episodes"; is it a scores.json written '
                     'by python -m scalable_agent.evaluate?')
  scored = [s.name for s in suites.all_suites() if s.references()]
  if data.get('suite') not in scored:
    raise ValueError(
        f'{path}: suite {data.get("suite")!r}; reports cover score files of '
        f'{" and ".join(scored)}.')
  suite = suites.get(data['suite'])
  references = suite.references()
  episodes = {}
  for name, returns in data['episodes'].items():
    name = suite.reference_name(name)
    if not returns:
      raise ValueError(f'{path}: no episode returns for {name!r}.')
    episodes[name] = [float(r) for r in returns]
  # Table order, whatever the file's.
  episodes = {n: episodes[n] for n in references if n in episodes}
  skipped = {suite.reference_name(n): str(why)
             for n, why in (data.get('skipped') or {}).items()}
  mean_return = {n: float(np.mean(r)) for n, r in episodes.items()}
  suite_score = (scoring.suite_score(suite, episodes)
                 if len(episodes) == len(references) else None)
  return ScoreFile(
      path=path, label=label or _default_label(path), suite=suite,
      level=data.get('level'), checkpoint=data.get('checkpoint'),
      torso=data.get('torso'),
      max_episode_frames=data.get('max_episode_frames'), episodes=episodes,
      mean_return=mean_return, suite_score=suite_score, skipped=skipped)


def unique_labels(score_files):
  """The `ScoreFile`s, a label given twice numbered: 'run', 'run (2)'."""
  seen = collections.Counter()
  result = []
  for score_file in score_files:
    seen[score_file.label] += 1
    if seen[score_file.label] > 1:
      score_file = score_file._replace(
          label=f'{score_file.label} ({seen[score_file.label]})')
    result.append(score_file)
  return result
