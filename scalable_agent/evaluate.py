"""Evaluates an IMPALA agent with its suite's evaluation protocol.

    python -m scalable_agent.evaluate --level=atari57 \\
        --checkpoint=runs/atari57 --episodes=200 --num_workers=2 \\
        --output=eval/atari57

Loads the agent's weights from a training checkpoint (or takes a fresh,
untrained agent with `--checkpoint=none`), plays `--episodes` finished
episodes of every level of `--level` and writes

    <output>/scores.csv    one row per episode: level, episode, return,
                           length (agent steps), frames (environment frames)
    <output>/scores.json   the episode returns per level, their means, the
                           human-normalised scores and the suite's headline

then prints the per-level table beside the paper's IMPALA numbers and the
suite's headline (DMLab-30: mean capped human-normalised score; Atari-57:
median). `python -m scalable_agent.report` turns score files into tables and
plots.

Protocols (reference README, "Scoring" and "Environments"):
  * Atari: the whole game (a life loss does not end the episode), 1..30
    random no-ops at the start, a cap of 108,000 frames. `--max_episode_frames`
    lowers the cap for quick runs; returns of capped games are then not
    comparable with the paper, and the score file says so.
  * DMLab-30: the test variants of the levels with the evaluation mixer seed
    (`dmlab30.environment.make_batched_environment(training=False)`).
Actions are sampled from the policy, as during training and in the paper.

Levels are handed out one at a time to `--num_workers` processes (a shared
queue, so that a worker done with a short game takes the next one instead of
idling behind a fixed split). Each worker builds its own agent once and plays
each level with several environments stepped together, so that one forward
pass serves all of them. `--num_workers=0` runs everything in this process
(tests, debugging).

Only finished episodes count, and each of a level's environments contributes
a fixed quota of them: stopping at the first N episodes to finish, whichever
environment they come from, would favour short episodes (which are usually
the bad ones) and bias the mean return.
"""

import argparse
import collections
import csv
import json
import multiprocessing
import os
import queue as queue_lib
import sys
import time
import traceback

import numpy as np

from scalable_agent import scoring
from scalable_agent import suites

# Environments a level is played with at once (fewer if fewer episodes).
DEFAULT_ENVS_PER_LEVEL = 8

# What `evaluate` returns, and what scores.json holds.
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
EvaluationResult = collections.namedtuple(
    'EvaluationResult',
    'suite level checkpoint torso episodes lengths mean_return '
    'human_normalized paper_column suite_score max_episode_frames elapsed_s')

# One finished episode.
Episode = collections.namedtuple('Episode', 'level episode_return length')

# What a worker needs to know; crosses the process boundary (pickled).
_WorkerSpec = collections.namedtuple(
    '_WorkerSpec',
    'level checkpoint torso episodes envs_per_level seed max_episode_frames '
    'dataset_path level_cache_dir intra_op_threads')

# Messages from workers to the main process. kind: 'episode' (`episode` set),
# 'level_done', 'checkpoint_error' and 'error' (`message` set), or
# 'worker_done'.
_Event = collections.namedtuple('_Event', 'kind worker level episode message')


class CheckpointError(ValueError):
  """A checkpoint is missing, unreadable, or does not fit the agent."""


def resolve_checkpoint(path):
  """`--checkpoint` -> checkpoint prefix to restore, or None for 'none'.

  Args:
    path: 'none' (or None / ''), a run's logdir (its `checkpoints/`
      subdirectory is searched), a checkpoint directory, or a checkpoint
      prefix such as `<logdir>/checkpoints/ckpt-12`.

  Returns:
    The newest checkpoint's prefix, or None.

  Raises:
    CheckpointError: nothing restorable is there.
  """
  if not path or str(path).lower() == 'none':
    return None
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  path = os.fspath(path)
  how = ("pass a run's --logdir (its checkpoints/ subdirectory is searched), "
         'a checkpoint prefix such as <logdir>/checkpoints/ckpt-12, or '
         "'none' for an untrained agent")
  if os.path.isdir(path):
    for directory in (os.path.join(path, 'checkpoints'), path):
      latest = tf.train.latest_checkpoint(directory)
      if latest:
        return latest
    raise CheckpointError(f'No checkpoint found in {path!r}: {how}.')
  if os.path.exists(path + '.index'):
    return path
  if path.endswith('.index') and os.path.exists(path):
    return path[:-len('.index')]
  raise CheckpointError(f'Checkpoint {path!r} does not exist: {how}.')


def restore_agent(agent, checkpoint_path, description=''):
  """Loads the agent's weights (only them) from a training checkpoint.

  The agent's variables must exist (call it once first): then every one of
  them is either restored now or reported missing, rather than silently
  staying at its random initial value.

  Args:
    agent: `networks.ImpalaAgent` with its variables built.
    checkpoint_path: prefix of a checkpoint written by
      `tf.train.Checkpoint(agent=..., optimizer=..., ...)` (training.py).
    description: what the agent was built for (e.g. "--level=pong
      --torso=shallow, 6 actions"), for error messages.

  Raises:
    CheckpointError: the checkpoint is unreadable, or its agent has other
      variables or shapes (another level, action set or torso).
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  corrupt = (
      f'Cannot read checkpoint {checkpoint_path!r}: it is corrupt or '
      'incomplete ({}). Evaluate another checkpoint of the run (the '
      'CheckpointManager keeps the last ones in <logdir>/checkpoints; pass '
      'one as --checkpoint=<logdir>/checkpoints/ckpt-N).')
  # Read every tensor first: the bundle's checksums then tell a damaged file
  # apart from a model mismatch, whatever exception type the reader raises
  # (a truncated file gives an IndexError, a flipped byte a DataLossError).
  try:
    reader = tf.train.load_checkpoint(checkpoint_path)
    for name in reader.get_variable_to_shape_map():
      reader.get_tensor(name)
  except Exception as e:  # pylint: disable=broad-except
    raise CheckpointError(
        corrupt.format(f'{type(e).__name__}: {_first_line(e)}')) from e
  # Only the agent: the optimiser's slots, frame counter and step of the
  # training checkpoint stay unread (`expect_partial`).
  checkpoint = tf.train.Checkpoint(agent=agent)
  try:
    status = checkpoint.restore(checkpoint_path)
    # Every variable of this agent must come from the checkpoint: a deep
    # torso checkpoint read into a shallow agent would otherwise leave the
    # torso untouched and "evaluate" random convolutions.
    status.assert_existing_objects_matched()
  except tf.errors.OpError as e:
    raise CheckpointError(
        corrupt.format(f'{type(e).__name__}: {_first_line(e)}')) from e
  except (AssertionError, ValueError) as e:
    raise CheckpointError(
        f'Checkpoint {checkpoint_path!r} does not fit the agent built for '
        f'{description or "this level"}: {_first_line(e)}. It was written '
        'for another level, action set or torso: pass the --level and '
        '--torso the run was trained with.') from e
  status.expect_partial()


def _first_line(error, limit=300):
  text = str(error).strip().split('\n')[0]
  return text if len(text) <= limit else text[:limit] + '...'


def make_evaluation_environment(config, level, num_envs, seed=0,
                                max_episode_frames=None, dataset_path=None,
                                level_cache_dir=None):
  """`num_envs` environments of ONE level of `config`, evaluation protocol.

  Args:
    config: `suites.LevelConfig` of what is evaluated (one level or a suite).
    level: one of `config.levels`.
    num_envs: N.
    seed: base seed (environment i: seed + i).
    max_episode_frames: Atari frame cap (None: the protocol's 108,000).
    dataset_path, level_cache_dir: DMLab only.

  Returns:
    A BatchedEnvironment (`environments.py`).
  """
  return config.suite.make_environment(
      config, num_envs, seed=seed, training=False, levels=[level],
      options=suites.EnvironmentOptions(
          dataset_path=dataset_path, level_cache_dir=level_cache_dir,
          max_episode_frames=max_episode_frames))


def report_name(config, level):
  """The name a level's scores are reported under (DMLab: the test name)."""
  return config.suite.canonical_name(level, evaluation=True)


class Policy:
  """An agent with a compiled step, its weights restored from a checkpoint.

  Args:
    config: `suites.LevelConfig`.
    num_actions: the environments' action count.
    torso: torso name, or None for the suite's default.
    checkpoint: checkpoint prefix (see `resolve_checkpoint`) or None.
    env_output: an `EnvOutput` of the environments, used to build the agent's
      variables before restoring them.
  """

  def __init__(self, config, num_actions, torso, checkpoint, env_output):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    self.agent = config.suite.make_agent(num_actions, torso)
    # One trace per batch size: levels share the batch size, so a worker
    # compiles once.
    self._step = tf.function(self._agent_step)
    batch_size = env_output.reward.shape[0]
    self._step(np.zeros([batch_size], np.int32), env_output,
               self.agent.initial_state(batch_size))
    if checkpoint is not None:
      restore_agent(
          self.agent, checkpoint,
          f'--level={config.name} '
          f'--torso={torso or config.suite.default_torso} '
          f'({num_actions} actions)')

  def _agent_step(self, prev_action, env_output, state):
    # Episode statistics do not enter the network.
    return self.agent.step(prev_action, env_output._replace(info=()), state)

  def initial_state(self, batch_size):
    return self.agent.initial_state(batch_size)

  def step(self, prev_action, env_output, state):
    """(AgentOutput of tensors, new state) for a batch."""
    return self._step(prev_action, env_output, state)


def episode_quotas(episodes, num_envs):
  """int [num_envs]: finished episodes each environment contributes.

  Fixed in advance (not "the first `episodes` to finish") so that short
  episodes are not over-represented in the mean.
  """
  quotas = np.full([num_envs], episodes // num_envs, np.int64)
  quotas[:episodes % num_envs] += 1
  return quotas


def sample_actions(policy_logits, rng):
  """int32 [B] actions drawn from softmax(policy_logits [B, A]) with `rng`.

  The Gumbel-max trick: argmax(logits + Gumbel noise) is distributed as
  softmax(logits).
  """
  logits = np.asarray(policy_logits, np.float64)
  return np.argmax(logits + rng.gumbel(size=logits.shape),
                   axis=-1).astype(np.int32)


def play_level(policy, env, episodes, level_name, on_episode, rng=None,
               greedy=False):
  """Plays `episodes` finished episodes of one level with `policy`.

  Args:
    policy: `Policy` (or anything with `initial_state(n)` and
      `step(prev_action, env_output, state)` -> (AgentOutput, state)).
    env: BatchedEnvironment of that level, fresh (it is reset here).
    episodes: how many finished episodes to collect.
    level_name: name the episodes are reported under.
    on_episode: called with an `Episode` as each counted episode finishes.
    rng: `np.random.RandomState` to sample actions from the policy logits
      with, or None to play the actions the agent sampled itself. The
      agent's own sampling draws from one TF random stream per process, so
      a level's episodes would depend on which levels its worker played
      before; a generator per level makes a run reproducible.
    greedy: play the most probable action instead (argmax of the logits).

  Returns:
    List of `Episode`s, in the order they finished.
  """
  num_envs = env.num_envs
  quotas = episode_quotas(episodes, num_envs)
  counts = np.zeros([num_envs], np.int64)
  results = []
  env_output = env.reset()
  # The first observation starts an episode: a recurrent core starts from its
  # initial state (as the actors do).
  env_output = env_output._replace(done=np.ones([num_envs], bool))
  state = policy.initial_state(num_envs)
  prev_action = np.zeros([num_envs], np.int32)
  while np.any(counts < quotas):
    agent_output, state = policy.step(prev_action, env_output, state)
    if greedy:
      prev_action = np.argmax(np.asarray(agent_output.policy_logits),
                              axis=-1).astype(np.int32)
    elif rng is None:
      prev_action = np.asarray(agent_output.action, np.int32)
    else:
      prev_action = sample_actions(agent_output.policy_logits, rng)
    env_output = env.step(prev_action)
    finished = _finished_episodes(env, env_output)
    for i in np.flatnonzero(finished & (counts < quotas)):
      counts[i] += 1
      episode = Episode(level_name,
                        float(env_output.info.episode_return[i]),
                        int(env_output.info.episode_step[i]))
      results.append(episode)
      on_episode(episode)
  return results


def _finished_episodes(env, env_output):
  """bool [N]: where this step finished an episode worth reporting.

  The whole game for Atari (never just a life; in the evaluation protocol a
  life loss does not even set `done`). Batches say so in
  `info.episode_end` or, for Atari batches without it, `last_game_over`;
  elsewhere an episode ends with `done`.
  """
  end = getattr(env_output.info, 'episode_end', None)
  if end is None:
    end = getattr(env, 'last_game_over', None)
  return np.asarray(env_output.done if end is None else end, bool)


def _worker_loop(spec, worker_index, next_levels, report):
  """Plays the levels `next_levels` yields until it is exhausted.

  Args:
    spec: `_WorkerSpec`.
    worker_index: this worker's index (for seeds and messages).
    next_levels: iterable of level names of `spec.level`'s config.
    report: callable taking `_Event`s.
  """
  config = suites.resolve(spec.level)
  policy = None
  for level in next_levels:
    name = report_name(config, level)
    # A level's seeds (environments and actions) do not depend on which
    # worker plays it, so a run is reproducible whatever the number of
    # workers.
    level_seed = spec.seed + 1000 * config.levels.index(level)
    env = make_evaluation_environment(
        config, level, spec.envs_per_level, seed=level_seed,
        max_episode_frames=spec.max_episode_frames,
        dataset_path=spec.dataset_path, level_cache_dir=spec.level_cache_dir)
    try:
      if policy is None:
        import tensorflow as tf  # pylint: disable=g-import-not-at-top
        # The initial weights of an untrained agent.
        tf.random.set_seed(spec.seed)
        policy = Policy(config, env.num_actions, spec.torso, spec.checkpoint,
                        env.reset())
      play_level(policy, env, spec.episodes, name,
                 lambda e: report(_Event('episode', worker_index, e.level, e,
                                         None)),
                 rng=np.random.RandomState(level_seed))
    finally:
      env.close()
    report(_Event('level_done', worker_index, name, None, None))


def _worker_process(spec, worker_index, tasks, events):
  """Entry point of a spawned worker: levels from `tasks` until None."""
  current = {'level': None}

  def levels():
    for level in iter(tasks.get, None):
      current['level'] = level
      yield level

  try:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    if spec.intra_op_threads:
      # Workers share the machine's cores; more threads per op than cores
      # per worker only adds contention.
      tf.config.threading.set_intra_op_parallelism_threads(
          spec.intra_op_threads)
      tf.config.threading.set_inter_op_parallelism_threads(
          spec.intra_op_threads)
    _worker_loop(spec, worker_index, levels(), events.put)
  except CheckpointError as e:
    events.put(_Event('checkpoint_error', worker_index, current['level'],
                      None, str(e)))
  except BaseException:  # pylint: disable=broad-except
    events.put(_Event('error', worker_index, current['level'], None,
                      traceback.format_exc()))
  else:
    events.put(_Event('worker_done', worker_index, None, None, None))


def _run_workers(spec, level_names, num_workers, on_event):
  """Runs `_worker_process`es over `level_names`; events go to `on_event`."""
  context = multiprocessing.get_context('spawn')  # Fork and TF do not mix.
  tasks = context.Queue()
  events = context.Queue()
  for level in level_names:
    tasks.put(level)
  for _ in range(num_workers):
    tasks.put(None)  # One stop sign per worker.
  workers = [
      context.Process(target=_worker_process,
                      args=(spec, i, tasks, events),
                      name=f'evaluate-worker-{i}', daemon=True)
      for i in range(num_workers)]
  for worker in workers:
    worker.start()
  running = num_workers
  try:
    while running:
      try:
        event = events.get(timeout=2.)
      except queue_lib.Empty:
        # A worker killed from outside (out of memory, a signal) says
        # nothing; do not wait for it forever.
        dead = [w for w in workers if w.exitcode not in (None, 0)]
        if dead:
          raise RuntimeError(
              f'Evaluation worker {dead[0].name} died (exit code '
              f'{dead[0].exitcode}) without reporting an error; out of '
              'memory? Try fewer --num_workers or --envs_per_level.'
          ) from None
        continue
      if event.kind == 'worker_done':
        running -= 1
      elif event.kind == 'checkpoint_error':
        raise CheckpointError(event.message)
      elif event.kind == 'error':
        raise RuntimeError(
            f'Evaluation worker {event.worker} failed on level '
            f'{event.level!r}:\n{event.message}')
      else:
        on_event(event)
  finally:
    for worker in workers:
      if worker.is_alive() and running:
        worker.terminate()  # Only after an error: the others are useless.
    for worker in workers:
      worker.join()


class ProgressBar:
  """`[#####.....] 23/57 levels, 80/114 episodes, 3m12s` on a stream.

  Redrawn in place on a terminal; elsewhere (logs, CI) one line per finished
  level, so that a log does not fill with redraws.
  """

  def __init__(self, num_levels, num_episodes, stream=None, width=30,
               enabled=True):
    self._num_levels = num_levels
    self._num_episodes = num_episodes
    self._stream = stream or sys.stderr
    self._width = width
    self._enabled = enabled
    self._start = time.time()
    self._last_draw = 0.
    self._interactive = enabled and hasattr(self._stream, 'isatty') and (
        self._stream.isatty())
    self.levels = 0
    self.episodes = 0

  def _line(self):
    filled = (self._width * self.levels // self._num_levels
              if self._num_levels else self._width)
    elapsed = int(time.time() - self._start)
    return (f'[{"#" * filled}{"." * (self._width - filled)}] '
            f'{self.levels}/{self._num_levels} levels, '
            f'{self.episodes}/{self._num_episodes} episodes, '
            f'{elapsed // 60}m{elapsed % 60:02d}s')

  def update(self, levels=0, episodes=0):
    self.levels += levels
    self.episodes += episodes
    if not self._enabled:
      return
    if self._interactive:
      now = time.time()
      if levels or now - self._last_draw > 0.2:
        self._stream.write('\r' + self._line())
        self._stream.flush()
        self._last_draw = now
    elif levels:
      self._stream.write(self._line() + '\n')
      self._stream.flush()

  def close(self):
    if self._enabled and self._interactive:
      self._stream.write('\n')
      self._stream.flush()


def evaluate(level, checkpoint=None, episodes=10, num_workers=2, torso=None,
             output_dir=None, seed=0, envs_per_level=None,
             max_episode_frames=None, dataset_path=None, level_cache_dir=None,
             only_levels=None, progress=True, print_fn=print):
  """Evaluates an agent on every level of `level`; see the module docstring.

  Args:
    level: what `suites.resolve` takes: 'atari57', 'pong', 'dmlab30', a
      DMLab-30 level, ...
    checkpoint: what `resolve_checkpoint` takes; None or 'none' evaluates a
      fresh, untrained agent.
    episodes: finished episodes per level.
    num_workers: worker processes; 0 runs in this process.
    torso: the agent's torso (None: the suite's default). Must be the one
      the checkpoint was trained with.
    output_dir: where scores.csv and scores.json go (None: not written).
    seed: base seed of environments and action sampling.
    envs_per_level: environments a level is played with at once (default
      min(episodes, DEFAULT_ENVS_PER_LEVEL)).
    max_episode_frames: Atari episode frame cap (None: 108,000).
    dataset_path, level_cache_dir: DMLab psychlab dataset and map cache.
    only_levels: evaluate only these levels of a multi-task `level` (the
      agent is still the multi-task one, e.g. 18 Atari actions); None: all.
      Without every level there is no suite headline.
    progress: show the progress bar on stderr.
    print_fn: where the table goes (None: not printed).

  Returns:
    `EvaluationResult`.

  Raises:
    CheckpointError: the checkpoint is missing, corrupt or for another agent.
    ValueError: unknown level or invalid arguments.
  """
  if episodes < 1:
    raise ValueError(f'episodes must be >= 1, got {episodes}.')
  config = suites.resolve(level)
  level_names = select_levels(config, only_levels)
  checkpoint = resolve_checkpoint(checkpoint)
  config.suite.protocol(max_episode_frames)  # Refuses an unsupported cap.
  envs_per_level = envs_per_level or min(episodes, DEFAULT_ENVS_PER_LEVEL)
  # More environments than episodes would only play episodes nobody counts.
  envs_per_level = max(1, min(envs_per_level, episodes))
  num_workers = max(0, min(num_workers, len(level_names)))
  spec = _WorkerSpec(
      level=level, checkpoint=checkpoint, torso=torso, episodes=episodes,
      envs_per_level=envs_per_level, seed=seed,
      max_episode_frames=max_episode_frames, dataset_path=dataset_path,
      level_cache_dir=level_cache_dir,
      intra_op_threads=max(1, (os.cpu_count() or 1) // max(1, num_workers)))

  collected = collections.defaultdict(list)
  bar = ProgressBar(len(level_names), len(level_names) * episodes,
                    enabled=progress)

  def on_event(event):
    if event.kind == 'episode':
      collected[event.level].append(event.episode)
      bar.update(episodes=1)
    elif event.kind == 'level_done':
      bar.update(levels=1)

  start = time.time()
  try:
    if num_workers == 0:
      _worker_loop(spec, 0, level_names, on_event)
    else:
      _run_workers(spec, level_names, num_workers, on_event)
  finally:
    bar.close()
  result = _summarise(config, level, level_names, checkpoint, torso,
                      collected, max_episode_frames, time.time() - start)
  if output_dir:
    write_results(result, output_dir)
  if print_fn is not None:
    print_fn(format_table(result))
  return result


def select_levels(config, only_levels=None):
  """The levels of `config` to evaluate: all, or those of `only_levels`."""
  if not only_levels:
    return list(config.levels)
  by_name = {}
  for level in config.levels:
    by_name[level] = level
    by_name[report_name(config, level)] = level
  selected = []
  for name in only_levels:
    try:
      canonical = config.suite.canonical_name(name)
    except ValueError:
      canonical = None
    if canonical not in by_name:
      raise ValueError(f'{name!r} is not a level of --level={config.name} '
                       f'(levels: {", ".join(config.levels)}).')
    selected.append(by_name[canonical])
  # The suite's order, whatever the command line's, as in the tables.
  return [level for level in config.levels if level in selected]


def _summarise(config, level, level_names, checkpoint, torso, collected,
               max_episode_frames, elapsed_s):
  """Episodes per level -> `EvaluationResult`."""
  names = [report_name(config, l) for l in level_names]
  episodes = {n: [e.episode_return for e in collected[n]] for n in names}
  lengths = {n: [e.length for e in collected[n]] for n in names}
  mean_return = {n: float(np.mean(r)) for n, r in episodes.items()}
  suite = config.suite
  torso = torso or suite.default_torso
  references = suite.references()
  human_normalized = {}
  suite_score = None
  paper_column = None
  if references:
    for name, value in mean_return.items():
      reference = references[name]
      human_normalized[name] = float(scoring.human_normalized_score(
          value, reference.random, reference.human))
    if len(names) == len(references):
      suite_score = scoring.suite_score(suite, episodes)
    paper_column = suite.default_paper_column(
        multi_task=len(config.levels) > 1, torso=torso)
  return EvaluationResult(
      suite=suite.name, level=level, checkpoint=checkpoint, torso=torso,
      episodes=episodes, lengths=lengths, mean_return=mean_return,
      human_normalized=human_normalized, paper_column=paper_column,
      suite_score=suite_score, max_episode_frames=max_episode_frames,
      elapsed_s=float(elapsed_s))


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


def format_table(result):
  """The per-level table and the headline, as printed by the command."""
  suite = suites.get(result.suite)
  lines = []
  column = result.paper_column
  references = suite.references()
  title = suite.paper_column_title(column) if column else ''
  width = max([len('level')] + [len(n) for n in result.episodes])
  header = (f'{"level":<{width}}  {"episodes":>8}  {"mean return":>12}  '
            f'{"human-norm.":>11}')
  if column:
    header += f'  {"paper return":>12}  {"paper h.-n.":>11}'
  lines.append(header)
  lines.append('-' * len(header))
  for name, returns in result.episodes.items():
    line = f'{name:<{width}}  {len(returns):>8}  '
    line += f'{result.mean_return[name]:>12.1f}  '
    score = result.human_normalized.get(name)
    line += f'{score:>10.1f}%' if score is not None else f'{"":>11}'
    if column:
      reference = references[name]
      paper = reference.paper[column]
      paper_score = scoring.human_normalized_score(
          paper, reference.random, reference.human)
      line += f'  {paper:>12.1f}  {paper_score:>10.1f}%'
    lines.append(line)
  lines.append('-' * len(header))
  if column:
    lines.append(f'paper: {title} (IMPALA paper, {suite.paper_table})')
  if result.max_episode_frames:
    lines.append(f'NOTE: episodes capped at {result.max_episode_frames} '
                 'frames (protocol: 108000); returns are not comparable with '
                 "the paper's.")
  if result.suite_score is not None:
    paper_score = scoring.paper_suite_score(suite, column)
    (head_title, head), (other_title, other) = suite.statistics[:2]
    s = result.suite_score
    lines.append(f'{suite.title} {head_title.lower()} score: '
                 f'{getattr(s, head):.1f}%  ({other_title.lower()} '
                 f'{getattr(s, other):.1f}%; paper {title}: '
                 f'{getattr(paper_score, head):.1f}%)')
  elif len(result.human_normalized) == 1:
    (name, score), = result.human_normalized.items()
    lines.append(f'{name}: human-normalised score {score:.1f}%')
  lines.append(f'{sum(map(len, result.episodes.values()))} episodes in '
               f'{result.elapsed_s:.0f}s; checkpoint: '
               f'{result.checkpoint or "none (untrained agent)"}')
  return '\n'.join(lines)


def parse_args(argv=None):
  parser = argparse.ArgumentParser(
      prog='python -m scalable_agent.evaluate',
      description=__doc__.split('\n')[0],
      formatter_class=argparse.RawDescriptionHelpFormatter,
      epilog='Example: python -m scalable_agent.evaluate --level=atari57 '
      '--checkpoint=runs/atari57 --episodes=10 --output=eval/atari57')
  add = parser.add_argument
  add('--level', required=True,
      help='atari57, dmlab30, an Atari game (pong) or a DMLab-30 level.')
  add('--checkpoint', required=True,
      help="A run's logdir, a checkpoint prefix (<logdir>/checkpoints/"
      "ckpt-N), or 'none' for a fresh untrained agent.")
  add('--episodes', type=int, default=10,
      help='Finished episodes per level (paper: 200 Atari, 500 DMLab).')
  add('--num_workers', type=int, default=2,
      help='Worker processes (0: evaluate in this process).')
  add('--torso', default=None, choices=['shallow', 'deep', 'nature', 'mlp'],
      help="The checkpoint's torso (default: the suite's: shallow Atari, "
      'deep DMLab).')
  add('--output', default=None,
      help='Directory for scores.csv and scores.json (default: '
      'eval/<level>).')
  add('--seed', type=int, default=0)
  add('--envs_per_level', type=int, default=None,
      help='Environments played at once per level (default: '
      f'min(episodes, {DEFAULT_ENVS_PER_LEVEL})).')
  add('--max_episode_frames', type=int, default=None,
      help='Atari only: frame cap of an episode for quick runs (protocol: '
      '108000). Returns are then not comparable with the paper.')
  add('--dmlab_dataset_path', '--dataset_path', dest='dataset_path',
      default=None,
      help='DMLab psychlab dataset (Brady, Konkle, Oliva 2008).')
  add('--level_cache_dir', default=None,
      help='DMLab compiled-map cache directory.')
  add('--only_levels', default=None,
      help='Comma-separated levels of a multi-task --level to evaluate '
      '(e.g. pong,breakout of atari57); default all. No suite headline then.')
  add('--no_progress', action='store_true', help='No progress bar.')
  return parser.parse_args(argv)


def main(argv=None):
  args = parse_args(argv)
  output = args.output or os.path.join('eval', args.level.replace('/', '_'))
  try:
    evaluate(args.level, checkpoint=args.checkpoint, episodes=args.episodes,
             num_workers=args.num_workers, torso=args.torso,
             output_dir=output, seed=args.seed,
             envs_per_level=args.envs_per_level,
             max_episode_frames=args.max_episode_frames,
             dataset_path=args.dataset_path,
             level_cache_dir=args.level_cache_dir,
             only_levels=(args.only_levels.split(',') if args.only_levels
                          else None),
             progress=not args.no_progress)
  except (CheckpointError, ValueError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  print(f'Scores written to {os.path.join(output, "scores.csv")} and '
        f'{os.path.join(output, "scores.json")}.')
  return 0


if __name__ == '__main__':
  sys.exit(main())
