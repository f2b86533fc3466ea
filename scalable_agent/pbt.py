"""Population-based training (Jaderberg et al. 2017) as IMPALA used it.

The paper's best DMLab-30 rows (Table 3, appendix F) train a population of
24 learners, each with its own actors. After a burn-in of 20M frames, a
member becomes *ready* each time it has recorded 5,000 more episode returns;
it then compares its fitness with one other member chosen at random and, if
that member is better by more than the threshold, copies its weights and
hyperparameters (exploit), then multiplies each tunable hyperparameter, with
probability 1/3, by 1.2 or 1/1.2 (explore).

Members coordinate through a shared directory, with no process of ours in
between; everything is read and written with `tf.io.gfile`, so a local
disk, NFS or a cloud bucket serve alike:

    <pbt_dir>/records/member_<i>.json   the member's record (below), replaced
                                        atomically (written aside, renamed)
    <pbt_dir>/member_<i>/               the member's logdir: checkpoints,
                                        TensorBoard

A record: {"member", "frames", "episodes", "fitness", "fitness_kind",
"hyperparameters", "checkpoint" (a complete checkpoint of the member, saved
before the record names it), "history": [{"frames", "fitness",
"hyperparameters"}...], "events": [{"frames", "kind": "exploit" | "explore",
...}]}. `report --pbt` draws the population's fitness and hyperparameters
from them (`plot_population`).

Fitness: the suite's headline, as a fraction (mean capped human-normalised
score), for a multi-level run of a suite with reference scores; otherwise the
mean return of the last 100 episodes. The threshold is absolute for the
first (0.05: five points), relative to the member's own fitness for the
second (0.05: 5% of |fitness|, at least 0.05 return units).

    scalable_agent --level=dmlab30 --pbt_population=24 --logdir=runs/pbt
    python -m scalable_agent.report --pbt runs/pbt --output report/pbt
"""

import collections
import json
import logging
import math
import os
import time
import uuid

import numpy as np

_LOG = logging.getLogger('pbt')

# Paper Table D.1: the initial distributions of the tuned hyperparameters.
ENTROPY_COST_RANGE = (5e-5, 1e-2)    # log-uniform
LEARNING_RATE_RANGE = (5e-6, 5e-3)   # log-uniform
EPSILON_CHOICES = (1e-1, 1e-3, 1e-5, 1e-7)

Settings = collections.namedtuple('Settings', [
    'directory',             # the shared PBT directory
    'member',                # this member's index
    'burn_in_frames',        # no change before this many frames
    'ready_episodes',        # ready after this many more episode returns
    'threshold',             # see the module docstring
    'perturb_probability',   # per hyperparameter, at explore
    'perturb_factor',        # multiply by this or its inverse
    'tuned',                 # names of the hyperparameters PBT changes
])

PAPER = dict(burn_in_frames=20e6, ready_episodes=5000, threshold=0.05,
             perturb_probability=1 / 3, perturb_factor=1.2)


def tuned_names(suite_name):
  """Hyperparameters the paper tunes: learning rate, entropy cost and
  RMSProp epsilon; on Atari also the gradient-clipping threshold."""
  names = ['learning_rate', 'entropy_cost', 'epsilon']
  if suite_name == 'atari57':
    names.append('max_gradient_norm')
  return tuple(names)


def initial_hyperparameters(rng, defaults, tuned):
  """A member's starting values: Table D.1's distributions for the three
  the paper draws; others (gradient clipping) keep `defaults`."""
  values = dict(defaults)
  if 'entropy_cost' in tuned:
    values['entropy_cost'] = _log_uniform(rng, *ENTROPY_COST_RANGE)
  if 'learning_rate' in tuned:
    values['learning_rate'] = _log_uniform(rng, *LEARNING_RATE_RANGE)
  if 'epsilon' in tuned:
    values['epsilon'] = float(rng.choice(EPSILON_CHOICES))
  return values


def _log_uniform(rng, low, high):
  return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def is_better(other_fitness, own_fitness, threshold, fitness_kind):
  """Whether `other` beats `own` by more than the threshold (see the module
  docstring for its two meanings)."""
  if other_fitness is None or own_fitness is None:
    return False
  if fitness_kind == 'human_normalized':
    margin = threshold
  else:
    margin = threshold * max(abs(own_fitness), 1.)
  return other_fitness - own_fitness > margin


def explore(values, rng, tuned, probability, factor):
  """Each tuned value, with `probability`, times `factor` or 1/`factor`
  (even odds). Returns (new values, {name: multiplier} of those changed)."""
  values = dict(values)
  changed = {}
  for name in tuned:
    if rng.random() < probability:
      multiplier = factor if rng.random() < 0.5 else 1. / factor
      values[name] *= multiplier
      changed[name] = multiplier
  return values, changed


def choose_other(records, member, rng):
  """One other member's record, uniformly; None if there is none yet."""
  others = [r for r in records if r['member'] != member
            and r.get('checkpoint') and r.get('fitness') is not None]
  if not others:
    return None
  return others[rng.integers(len(others))]


# The shared directory.


def records_dir(directory):
  return os.path.join(directory, 'records')


def member_logdir(directory, member):
  return os.path.join(directory, f'member_{member}')


def write_record(directory, record):
  """Replaces the member's record atomically: a reader sees the old one or
  the new one, never a part."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  folder = records_dir(directory)
  tf.io.gfile.makedirs(folder)
  path = os.path.join(folder, f'member_{record["member"]}.json')
  temporary = f'{path}.tmp-{uuid.uuid4().hex}'
  with tf.io.gfile.GFile(temporary, 'w') as f:
    f.write(json.dumps(record, indent=1))
  tf.io.gfile.rename(temporary, path, overwrite=True)
  return path


def read_records(directory):
  """Every member's record (those that could be read), by member index."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  folder = records_dir(directory)
  if not tf.io.gfile.isdir(folder):
    return []
  records = []
  for name in sorted(tf.io.gfile.listdir(folder)):
    if not name.endswith('.json'):
      continue
    path = os.path.join(folder, name)
    try:
      with tf.io.gfile.GFile(path) as f:
        record = json.loads(f.read())
    except (ValueError, OSError) as e:  # Vanished or being replaced.
      _LOG.debug('skipping record %s: %s', name, e)
      continue
    problem = record_problem(record)
    if problem:
      # One bad file must not take the population down: every member reads
      # every record at each ready point.
      _LOG.warning('skipping PBT record %s: %s', path, problem)
      continue
    records.append(record)
  return sorted(records, key=lambda r: r['member'])


def _is_number(value):
  return (isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value))


def record_problem(record):
  """What makes `record` unusable as a member's record, or None.

  Checks the fields other members read: 'member' (an int >= 0), 'fitness'
  (None or a finite number), 'checkpoint' (None or a path), and
  'hyperparameters' ({name: finite number}), 'history' and 'events' (lists)
  where present.
  """
  if not isinstance(record, dict):
    return f'not a JSON object but {type(record).__name__}'
  member = record.get('member')
  if not isinstance(member, int) or isinstance(member, bool) or member < 0:
    return f'"member" must be an int >= 0, got {member!r}'
  fitness = record.get('fitness')
  if fitness is not None and not _is_number(fitness):
    return f'"fitness" must be a finite number or null, got {fitness!r}'
  checkpoint = record.get('checkpoint')
  if checkpoint is not None and not isinstance(checkpoint, str):
    return f'"checkpoint" must be a path or null, got {checkpoint!r}'
  hyperparameters = record.get('hyperparameters', {})
  if not isinstance(hyperparameters, dict) or not all(
      isinstance(k, str) and _is_number(v)
      for k, v in hyperparameters.items()):
    return ('"hyperparameters" must map names to finite numbers, got '
            f'{hyperparameters!r}')
  for key in ('history', 'events'):
    if not isinstance(record.get(key, []), list):
      return f'"{key}" must be a list, got {record[key]!r}'
  return None


class Member:
  """One member of the population: decides, when ready, to exploit/explore.

  `after_step(frames)` is called by the training loop after each learner
  step; it returns quickly unless the member is ready.

  Args:
    settings: `Settings`.
    loop: the member's `training.TrainingLoop` (its learner, statistics,
      checkpoints).
    fitness_kind: 'human_normalized' or 'return' (module docstring).
    seed: seeds the member's random choices.
  """

  def __init__(self, settings, loop, fitness_kind, seed=0):
    self.settings = settings
    self.loop = loop
    self.fitness_kind = fitness_kind
    self.rng = np.random.default_rng([seed, settings.member])
    self.history = []
    self.events = []
    self._episodes_at_ready = 0
    previous = [r for r in read_records(settings.directory)
                if r['member'] == settings.member]
    if previous:  # A resumed member keeps its history; its episode count
      # starts again from 0 with the training statistics.
      self.history = previous[0].get('history', [])
      self.events = previous[0].get('events', [])
    loop.keep_restored_hyperparameters = True

  def start(self, restored, defaults):
    """Draws the initial hyperparameters, unless resuming a checkpoint."""
    if not restored:
      values = initial_hyperparameters(self.rng, defaults,
                                       self.settings.tuned)
      self.loop.learner.tunable.assign(**values)
    _LOG.info('member %d: %s', self.settings.member,
              _describe(self.loop.learner.tunable.values()))

  def fitness(self):
    scores, suite_score = self.loop.statistics.human_normalized()
    del scores
    if self.fitness_kind == 'human_normalized':
      return None if suite_score is None else suite_score / 100.
    mean = self.loop.statistics.mean_return()
    return None if math.isnan(mean) else mean

  def _record(self, frames, checkpoint):
    return {
        'member': self.settings.member, 'frames': int(frames),
        'episodes': int(self.loop.statistics.episodes),
        'fitness': self.fitness(), 'fitness_kind': self.fitness_kind,
        'hyperparameters': self.loop.learner.tunable.values(),
        'checkpoint': checkpoint, 'history': self.history,
        'events': self.events, 'time': time.time()}

  def after_step(self, frames):
    """Returns the event dicts of this step (empty unless ready)."""
    episodes = int(self.loop.statistics.episodes)
    if (frames < self.settings.burn_in_frames or episodes
        - self._episodes_at_ready < self.settings.ready_episodes):
      return []
    self._episodes_at_ready = episodes
    return self.ready(frames)

  def ready(self, frames):
    """Publishes this member, then exploits and explores if it should."""
    fitness = self.fitness()
    checkpoint = self.loop.save()  # Complete before the record names it.
    self.history.append({'frames': int(frames), 'fitness': fitness,
                         'hyperparameters':
                             self.loop.learner.tunable.values()})
    write_record(self.settings.directory, self._record(frames, checkpoint))
    other = choose_other(read_records(self.settings.directory),
                         self.settings.member, self.rng)
    if other is None or not is_better(other['fitness'], fitness,
                                      self.settings.threshold,
                                      self.fitness_kind):
      return []
    events = self.exploit(other, frames)
    if not events:
      return []
    values, changed = explore(
        self.loop.learner.tunable.values(), self.rng, self.settings.tuned,
        self.settings.perturb_probability, self.settings.perturb_factor)
    self.loop.learner.tunable.assign(**values)
    if changed:
      events.append({'frames': int(frames), 'kind': 'explore',
                     'multipliers': changed,
                     'hyperparameters': values})
    self.events += events
    for event in events:
      _LOG.info('member %d %s', self.settings.member, _describe_event(event))
    write_record(self.settings.directory, self._record(frames, checkpoint))
    return events

  def exploit(self, other, frames):
    """Copies `other`'s weights, optimiser slots and hyperparameters; the
    member's own frame and step counters go on. Returns the event list, or
    [] if the other's checkpoint could not be read (it is tried again at
    the next ready point)."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from scalable_agent import checkpoints  # pylint: disable=g-import-not-at-top
    learner = self.loop.learner
    copy = tf.train.Checkpoint(agent=learner.agent,
                               optimizer=learner.optimizer)
    try:
      checkpoints.restore(copy, other['checkpoint'],
                          checkpoints.TRAINING_FIXES,
                          model=f'member {other["member"]}', partial=True)
    except checkpoints.CheckpointError as e:
      _LOG.warning('member %d: cannot copy member %d (%s)',
                   self.settings.member, other['member'], e)
      return []
    learner.tunable.assign(**other['hyperparameters'])
    return [{'frames': int(frames), 'kind': 'exploit',
             'source': other['member'], 'source_fitness': other['fitness'],
             'own_fitness': self.fitness(),
             'hyperparameters': dict(other['hyperparameters'])}]


def _describe(values):
  return ', '.join(f'{k} {v:.3g}' for k, v in values.items())


def _describe_event(event):
  if event['kind'] == 'exploit':
    return (f'copies member {event["source"]} (fitness '
            f'{event["source_fitness"]:.3g} against {event["own_fitness"]:.3g})'
            f': {_describe(event["hyperparameters"])}')
  return 'explores: ' + ', '.join(
      f'{k} x{v:.3g}' for k, v in event['multipliers'].items())


# The report.


def plot_population(directory, output_dir):
  """fitness.png (each member's fitness over frames, exploits marked) and
  hyperparameters.png (each tuned value over frames, log scale)."""
  from scalable_agent import report_plots  # pylint: disable=g-import-not-at-top
  records = read_records(directory)
  if not records:
    raise ValueError(f'No PBT records under {directory!r} (expected '
                     f'{records_dir(directory)}/member_<i>.json).')
  os.makedirs(output_dir, exist_ok=True)
  plt = report_plots.pyplot()
  paths = {}
  figure, axes = plt.subplots(figsize=(8, 4.5))
  for record in records:
    colour = f'C{record["member"] % 10}'
    points = [(h['frames'], h['fitness']) for h in record['history']
              if h['fitness'] is not None]
    if points:
      axes.plot(*zip(*points), color=colour, marker='.',
                label=f'member {record["member"]}')
    # Lineage: an arrow from the member copied to the member copying.
    for event in record['events']:
      if event['kind'] == 'exploit' and event['own_fitness'] is not None:
        axes.annotate('', xy=(event['frames'], event['own_fitness']),
                      xytext=(event['frames'], event['source_fitness']),
                      arrowprops=dict(arrowstyle='->', color=colour,
                                      alpha=0.6, linewidth=0.8))
  axes.set_xlabel('environment frames')
  axes.set_ylabel(f'fitness ({records[0]["fitness_kind"]})')
  axes.set_title('PBT population (arrows: a member copies a better one)',
                 fontsize=9)
  axes.grid(alpha=0.3)
  axes.legend(fontsize=7)
  figure.tight_layout()
  paths['fitness'] = os.path.join(output_dir, 'fitness.png')
  figure.savefig(paths['fitness'], dpi=90)
  plt.close(figure)

  names = list(records[0]['hyperparameters'])
  figure, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.4),
                              squeeze=False)
  for axis, name in zip(axes[0], names):
    for record in records:
      points = [(h['frames'], h['hyperparameters'][name])
                for h in record['history']]
      if points and all(v > 0 for _, v in points):
        axis.plot(*zip(*points), color=f'C{record["member"] % 10}',
                  marker='.', drawstyle='steps-post')
    axis.set_yscale('log')
    axis.set_title(name, fontsize=9)
    axis.grid(alpha=0.3)
  figure.tight_layout()
  paths['hyperparameters'] = os.path.join(output_dir, 'hyperparameters.png')
  figure.savefig(paths['hyperparameters'], dpi=90)
  plt.close(figure)
  return paths
