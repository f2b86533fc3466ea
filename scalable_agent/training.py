"""The learner's side of IMPALA: queue -> tf.data -> steps, and all it reports.

`TrainingLoop` takes batches of unrolls from a queue of unrolls (filled by
actors, in this process or over gRPC), runs `learner.Learner.step` on each,
publishes the new parameters with a version number, counts frames and stops
at the frame budget. Around that it keeps what a researcher needs:

  * checkpoints (`tf.train.CheckpointManager`: agent, optimiser slots, step,
    frames), written every `checkpoint_every_s` and when training stops for
    any reason (frame budget, SIGINT/SIGTERM, an exception); a restarted
    learner resumes from the newest one;
  * TensorBoard summaries: loss terms, entropy, gradient norm, learning rate,
    episode return and length per level, human-normalised score per level and
    for the suite (Atari and DMLab), frames/s, queue fill, policy lag;
  * one console line every `log_every_s` seconds.

The queue is `transport.UnrollQueue` in both wirings: in-process actors
enqueue into it directly, remote ones through `transport.LearnerServer`.
"""

import collections
import logging
import os
import threading
import time

import numpy as np
import tensorflow as tf

from scalable_agent import actor as actor_lib
from scalable_agent import checkpoints
from scalable_agent import learner as learner_lib
from scalable_agent import replay

# Console lines: '[learner] step ...' (console.setup's format).
_LOG = logging.getLogger('learner')


class LearnerEndpoint:
  """What actors see of a learner in this process: parameters and a queue.

  Serves `actor.InProcessConnection` in the single-process wiring; across
  processes `transport.LearnerServer` plays this part over gRPC.
  """

  def __init__(self, variables, queue):
    self._variables = variables
    self._queue = queue
    self._version = 0
    self._lock = threading.Lock()
    self._snapshot = [v.numpy() for v in variables]

  def publish(self, version):
    """Makes the variables' current values the parameters of `version`."""
    snapshot = [v.numpy() for v in self._variables]
    with self._lock:
      self._snapshot, self._version = snapshot, version

  def parameters_version(self):
    return self._version

  def parameter_values(self):
    with self._lock:
      return self._snapshot

  def enqueue(self, unrolls):
    self._queue.enqueue(unrolls)


class Statistics:
  """Episode returns per level and throughput, for console and TensorBoard."""

  def __init__(self, level_names, suite, num_trained_levels=1, window=100):
    self._level_names = level_names
    self._suite = suite
    self._num_trained_levels = num_trained_levels
    self._returns = collections.defaultdict(
        lambda: collections.deque(maxlen=window))
    self._lengths = collections.defaultdict(
        lambda: collections.deque(maxlen=window))
    self.episodes = 0

  def add_episodes(self, episodes):
    for level_id, episode_return, episode_step in episodes:
      self._returns[level_id].append(episode_return)
      self._lengths[level_id].append(episode_step)
      self.episodes += 1

  def mean_return(self):
    """Mean over levels of each level's recent mean return (nan if none)."""
    means = [np.mean(r) for r in self._returns.values() if r]
    return float(np.mean(means)) if means else float('nan')

  def per_level(self):
    """{level name: (mean return, mean length)} over the recent window."""
    return {self._level_names[i]: (float(np.mean(r)),
                                   float(np.mean(self._lengths[i])))
            for i, r in self._returns.items() if r}

  def human_normalized(self):
    """({level: score %}, suite headline % or None); ({}, None) for a suite
    without reference scores.

    The suite headline (Atari-57 median, DMLab-30 capped mean) appears once
    every level of a multi-task run has finished an episode, and only for a
    run of all the suite's levels (not one that skipped levels that cannot
    run on its machine: `--skip_unavailable_levels`).
    """
    from scalable_agent import scoring  # pylint: disable=g-import-not-at-top
    references = self._suite.references() if self._suite else {}
    if not references:
      return {}, None
    returns = {name: r for name, (r, _) in self.per_level().items()}
    scores = {}
    for name, mean_return in returns.items():
      try:
        reference = references[self._suite.reference_name(name)]
      except (KeyError, ValueError):
        continue  # A level without reference scores (seekavoid_arena_01).
      scores[name] = float(scoring.human_normalized_score(
          mean_return, reference.random, reference.human))
    suite_score = None
    if (self._num_trained_levels > 1
        and len(returns) == self._num_trained_levels == len(references)):
      suite_score = scoring.suite_score(self._suite, returns).headline
    return scores, suite_score


class _StarvationWatchdog:
  """Warns while the learner has waited `after_s` for a batch.

  The learner waits inside TensorFlow for data; a thread notices instead.
  """

  def __init__(self, queue, endpoint, after_s, poll_s=None):
    self._queue = queue
    self._endpoint = endpoint
    self._after_s = after_s
    self._last = time.monotonic()
    self._stopped = threading.Event()
    if after_s:
      threading.Thread(target=self._watch, args=(poll_s or after_s / 4,),
                       daemon=True, name='starvation_watchdog').start()

  def fed(self):
    self._last = time.monotonic()

  def stop(self):
    self._stopped.set()

  def _watch(self, poll_s):
    warned_at = None
    while not self._stopped.wait(poll_s):
      waited = time.monotonic() - self._last
      if waited < self._after_s:
        warned_at = None
        continue
      if warned_at is not None and waited - warned_at < self._after_s:
        continue
      warned_at = waited
      num_clients = getattr(self._endpoint, 'num_clients', None)
      clients = (f'{num_clients()} actors have sent unrolls so far'
                 if num_clients else 'in-process actors')
      _LOG.warning('no batch for %.0f s (queue %d/%d; %s): are the actors '
                   'running, and pointed at this learner?', waited,
                   self._queue.queue_size(), self._queue.capacity, clients)


class TrainingLoop:
  """Runs learner steps on batches from an unroll queue until told to stop.

  Args:
    learner: `learner.Learner`.
    queue: `transport.UnrollQueue` that actors fill.
    endpoint: where new parameters are published (`publish(version)`):
      `LearnerEndpoint` in-process, `transport.LearnerServer` over gRPC.
    logdir: where checkpoints and TensorBoard logs go.
    level_names: names of the levels, indexed by `Unroll.level_id`.
    suite: the run's `suites.Suite` (for human-normalised scores), or None.
    num_trained_levels: levels this run trains on (the suite headline score
      is reported once each has finished an episode).
    checkpoint_every_s, log_every_s: periods.
    starved_after_s: warn when no batch has come for this long (0: never).
    stop_at_frames: stop training here (default: the learning-rate
      schedule's end, hparams.total_environment_frames). Lets a run stop
      early without changing its schedule, e.g. an A/B run of 5M frames of
      a 10M-frame schedule.
    checkpoint_every_frames: also checkpoint each time the frame count
      passes a multiple of this (for `periodic_evaluation`); 0: only by
      time.
  """

  def __init__(self, learner, queue, endpoint, logdir, level_names,
               suite=None, num_trained_levels=1,
               checkpoint_every_s=600., log_every_s=10.,
               starved_after_s=60.,
               stop_at_frames=None, checkpoint_every_frames=0):
    self.learner = learner
    self._checkpoint_every_frames = int(checkpoint_every_frames or 0)
    self.stop_at_frames = min(
        stop_at_frames or learner.hparams.total_environment_frames,
        learner.hparams.total_environment_frames)
    self.queue = queue
    self.endpoint = endpoint
    self.logdir = logdir
    self.statistics = Statistics(level_names, suite, num_trained_levels)
    self._checkpoint_every_s = checkpoint_every_s
    self._log_every_s = log_every_s
    self._starved_after_s = starved_after_s
    self._stop = threading.Event()
    # Population-based training members resume with the checkpoint's
    # hyperparameters; other runs with the command line's.
    self.keep_restored_hyperparameters = False
    # A `pbt.Member` when this learner belongs to a population (main.py).
    self.pbt_member = None
    self.step_counter = tf.Variable(0, dtype=tf.int64, trainable=False,
                                    name='learner_step')
    # What a checkpoint holds: modules (their variables) and variables.
    self._checkpointed = dict(
        agent=learner.agent, optimizer=learner.optimizer,
        num_env_frames=learner.num_env_frames, step=self.step_counter,
        hyperparameters=learner.tunable)
    self.checkpoint = tf.train.Checkpoint(**self._checkpointed)
    self.manager = tf.train.CheckpointManager(
        self.checkpoint, os.path.join(logdir, 'checkpoints'), max_to_keep=3)
    # With several learner workers (learner.multi_worker_strategy) only the
    # chief writes checkpoints and summaries; every worker logs to its
    # console.
    self._writer = (tf.summary.create_file_writer(logdir) if learner.is_chief
                    else tf.summary.create_noop_writer())
    hparams = learner.hparams
    self.replay_buffer = None
    if hparams.num_replayed:
      # Not in the checkpoint: see replay.py.
      self.replay_buffer = replay.ReplayBuffer(queue.signature.structure,
                                               hparams.replay_capacity)
      _LOG.info('replay: %d of each %d unrolls from a buffer of the last %d '
                'unrolls (%.2f GiB, not checkpointed)', hparams.num_replayed,
                hparams.batch_size, hparams.replay_capacity,
                self.replay_buffer.nbytes / 2**30)

  def _batches(self):
    """The learner's input: fresh batches from the queue, or with replay,
    `num_fresh` fresh unrolls followed by `num_replayed` replayed ones."""
    learner = self.learner
    if self.replay_buffer is None:
      return self.queue.dataset(learner.worker_batch_size)
    return replay.mix_with_replay(
        self.queue.dataset(learner.worker_num_fresh), self.replay_buffer,
        learner.worker_batch_size - learner.worker_num_fresh)

  def restore(self):
    """Resumes from the newest readable checkpoint in logdir, if any.

    A damaged checkpoint (a crash or a full disk while writing) is skipped,
    saying so, for the next older one; TensorFlow's `checkpoint` state file
    is not needed (the `ckpt-N` files are found by name), so deleting it or
    a damaged checkpoint never restarts a run from scratch over old files.

    Returns:
      the checkpoint path restored, or None if there is none.

    Raises:
      checkpoints.CheckpointError (a ValueError): every checkpoint is
        damaged, or they were written for another model.
    """
    path = self._restore_newest() if self.learner.is_chief else None
    # Other learner workers take the chief's restored (or initial) values
    # of everything the checkpoint holds.
    self.learner.broadcast_from_chief(
        v for value in self._checkpointed.values()
        for v in (value.variables if isinstance(value, tf.Module)
                  else [value]))
    self.endpoint.publish(int(self.step_counter))
    return path

  def _restore_newest(self):
    candidates = checkpoints.numbered_checkpoints(self.manager.directory)
    if not candidates:
      return None
    for path in candidates:
      try:
        checkpoints.restore(self.checkpoint, path, checkpoints.TRAINING_FIXES,
                            model='agent and optimiser of this run')
      except checkpoints.CorruptCheckpointError as e:
        _LOG.warning('skipping %s: %s', path, e)
        continue
      if path != candidates[0]:
        _LOG.warning('resumed from %s, older than the damaged %s.', path,
                     candidates[0])
        # Number later checkpoints past the damaged ones: a checkpoint is
        # never written over a file that is already there.
        newest = int(os.path.basename(candidates[0]).rpartition('-')[2])
        self.step_counter.assign(max(int(self.step_counter), newest + 1))
      if not self.keep_restored_hyperparameters:
        # The command line's settings, not the checkpoint's (which a
        # population-based training member keeps: they are its own).
        restored = self.learner.tunable.values()
        wanted = {name: float(getattr(self.learner.hparams, name) or 0.)
                  for name in restored}
        changed = {n: (restored[n], wanted[n]) for n in restored
                   if not np.isclose(restored[n], wanted[n])}
        if changed:
          _LOG.info('resuming with the command line\'s %s',
                    ', '.join(f'{n} {new:g} (checkpoint: {old:g})'
                              for n, (old, new) in changed.items()))
        self.learner.tunable.assign(**wanted)
      return path
    raise checkpoints.CheckpointError(
        f'None of the {len(candidates)} checkpoints in '
        f'{self.manager.directory} can be read (each is damaged; see the '
        'warnings above). Delete the directory to start afresh, or pass a '
        'different --logdir.')

  @property
  def stop_requested(self):
    """True once `stop()` was called (a signal), as opposed to a finish."""
    return self._stop.is_set()

  def stop(self):
    """Asks the loop to finish its step, checkpoint and return (any thread).

    With several learner workers the queue stays open at the first call, so
    that this worker reaches the next step boundary, where the workers agree
    to stop together; a second call closes it (a worker that no batch
    reaches cannot get there; its peers then fail their next all-reduce).
    """
    again = self._stop.is_set()
    self._stop.set()
    if self.learner.num_workers == 1 or again:
      self.queue.close()

  def save(self):
    """Checkpoints, unless a parameter is non-finite (then the previous
    checkpoints stay the newest, and it says so). Returns the path or None
    (always None on a learner worker other than the chief)."""
    if not self.learner.is_chief:
      return None
    bad = [v.name for v in self.learner.agent.trainable_variables
           if not bool(tf.reduce_all(tf.math.is_finite(v)))]
    if bad:
      _LOG.error('not checkpointing: %d parameters are not finite (%s%s); '
                 'the newest checkpoint in %s is the last good one.',
                 len(bad), ', '.join(bad[:3]), '...' if len(bad) > 3 else '',
                 self.manager.directory)
      return None
    try:
      return self.manager.save(checkpoint_number=int(self.step_counter))
    except (OSError, tf.errors.OpError) as e:
      # A full disk or a vanished mount: training goes on, the previous
      # checkpoints stay valid, and the next interval tries again.
      _LOG.error('checkpoint at step %d failed (%s: %s); the newest good one '
                 'is %s; trying again at the next interval.',
                 int(self.step_counter), type(e).__name__,
                 str(e).split('\n')[0][:200], self.manager.latest_checkpoint)
      return None

  def run(self, max_steps=None):
    """Trains until the frame budget, `max_steps` steps, or `stop()`.

    Returns:
      number of steps taken in this call.
    """
    hparams = self.learner.hparams
    iterator = iter(self._batches())
    watchdog = _StarvationWatchdog(self.queue, self.endpoint,
                                   self._starved_after_s)
    steps = 0
    logged = False
    last_log = last_checkpoint = time.time()
    frames_at_last_log = self.learner.frames
    self.endpoint.publish(int(self.step_counter))
    try:
      while True:
        stop_now = (self._stop.is_set()
                    or self.learner.frames >= self.stop_at_frames
                    or (max_steps is not None and steps >= max_steps))
        log_now = time.time() - last_log >= self._log_every_s
        # Learner workers must run the same collectives in the same order:
        # they stop, and log (which computes term gradients), together.
        stop_now, log_now = self.learner.any_worker(stop_now, log_now)
        if stop_now:
          break
        try:
          batch = next(iterator)
          watchdog.fed()
        except (StopIteration, tf.errors.OpError):
          if self._stop.is_set():  # stop() closed the queue.
            break
          raise
        # Per-term gradient norms cost three backward passes: only on the
        # steps that log, on the batch this step is about to train on.
        term_norms = (self.learner.gradient_norms_by_term(batch) if log_now
                      else None)
        stats = self.learner.step(batch)
        self.step_counter.assign_add(1)
        version = int(self.step_counter)
        self.endpoint.publish(version)
        steps += 1
        # Episodes of the fresh unrolls only: replayed ones were counted
        # when they were fresh.
        episodes = actor_lib.episode_statistics(
            tf.nest.map_structure(self._fresh_rows,
                                  batch._replace(agent_state=(),
                                                 agent_outputs=())))
        self.statistics.add_episodes(episodes)
        lag = version - 1 - float(np.mean(batch.policy_version.numpy()))
        now = time.time()
        frames = int(stats.num_env_frames)
        if self.pbt_member is not None:
          self._write_pbt_events(self.pbt_member.after_step(frames), frames)
        if log_now:
          fps = (frames - frames_at_last_log) / (now - last_log)
          self._report(stats, fps, lag, version, term_norms)
          last_log, frames_at_last_log = now, frames
          logged = True
        else:
          logged = False
        every = self._checkpoint_every_frames
        if (now - last_checkpoint >= self._checkpoint_every_s or
            (every and frames // every
             > (frames - hparams.frames_per_step) // every)):
          self.save()
          last_checkpoint = now
    finally:
      watchdog.stop()
      # Whatever ended the loop (budget, signal, exception), keep the work,
      # and show where it ended.
      if steps:
        self.save()
        if not logged:
          frames = int(stats.num_env_frames)
          elapsed = max(time.time() - last_log, 1e-6)
          self._report(stats, (frames - frames_at_last_log) / elapsed, lag,
                       version)
      try:
        self._writer.flush()
      except (OSError, tf.errors.OpError) as e:
        _LOG.error('TensorBoard summaries could not be flushed (%s).', e)
    return steps

  def _fresh_rows(self, t):
    """This worker's fresh unrolls of a batch field, as numpy."""
    return t[:self.learner.worker_num_fresh].numpy()

  def _write_pbt_events(self, events, frames):
    """TensorBoard: each exploit (the member copied) and explore (how many
    values changed) of population-based training."""
    if not events:
      return
    try:
      with self._writer.as_default(step=frames):
        for event in events:
          if event['kind'] == 'exploit':
            tf.summary.scalar('pbt/exploited_member', event['source'])
          else:
            tf.summary.scalar('pbt/explored_values',
                              len(event['multipliers']))
    except (OSError, tf.errors.OpError) as e:
      _LOG.error('TensorBoard PBT events failed (%s).', e)

  def _report(self, stats, fps, lag, version, term_norms=None):
    """TensorBoard scalars and the console line of one logging step."""
    frames = int(stats.num_env_frames)
    agent_steps = frames // self.learner.hparams.num_action_repeats
    queue_size = self.queue.queue_size()
    mean_return = self.statistics.mean_return()
    scores, suite_score = self.statistics.human_normalized()
    try:
      with self._writer.as_default(step=frames):
        for field in learner_lib.StepStats._fields:
          if field != 'num_env_frames':
            tf.summary.scalar(f'learner/{field}', getattr(stats, field))
        if term_norms is not None:
          for field, norm in term_norms._asdict().items():
            tf.summary.scalar(f'learner/gradient_norm_{field}', norm)
        tf.summary.scalar('learner/agent_steps', agent_steps)
        tf.summary.scalar('throughput/frames_per_second', fps)
        tf.summary.scalar('throughput/queue_fill',
                          queue_size / self.queue.capacity)
        tf.summary.scalar('throughput/policy_lag_updates', lag)
        tf.summary.scalar('learner/steps', version)
        for name, value in self.learner.tunable.values().items():
          tf.summary.scalar(f'hyperparameters/{name}', value)
        if self.pbt_member is not None:
          fitness = self.pbt_member.fitness()
          if fitness is not None:
            tf.summary.scalar('pbt/fitness', fitness)
        for level, (episode_return, length) in (
            self.statistics.per_level().items()):
          tf.summary.scalar(f'episode_return/{level}', episode_return)
          tf.summary.scalar(f'episode_length/{level}', length)
        for level, score in scores.items():
          tf.summary.scalar(f'human_normalized_score/{level}', score)
        if suite_score is not None:
          tf.summary.scalar('human_normalized_score/suite', suite_score)
      self._writer.flush()
    except (OSError, tf.errors.OpError) as e:
      # A full disk: TensorBoard loses these points, training and the
      # console go on, and the next report tries again.
      _LOG.error('TensorBoard summaries at step %d failed (%s: %s); '
                 'training goes on.', version, type(e).__name__,
                 str(e).split('\n')[0][:200])
    line = (f'step {version}  frames {frames:,} '
            f'(agent steps {agent_steps:,})  fps {fps:,.0f}  '
            f'return {mean_return:.2f} ({self.statistics.episodes} episodes)  '
            f'loss {float(stats.total_loss):.3f}  '
            f'entropy/step {float(stats.entropy_per_step):.3f}  '
            f'grad norm {float(stats.gradient_norm):.1f}  '
            f'queue {queue_size}/{self.queue.capacity}  lag {lag:.1f}')
    if suite_score is not None:
      line += f'  suite score {suite_score:.1f}%'
    if int(stats.skipped_steps):
      line += (f'  skipped {int(stats.skipped_steps)} non-finite '
               'updates')
    _LOG.info(line)
