"""The local wiring's actor processes: started, watched, restarted.

`ActorLauncher` runs `scalable_agent --role=actor` once per actor with the
learner's flags, restarts an actor that crashes (with a backoff, giving up on
one that keeps failing at once) and stops them all at the end. `main.py`'s
local wiring uses it; in a cluster, actors are started by whatever starts
processes there.
"""

import collections
import logging
import os
import signal
import subprocess
import sys
import threading
import time

_LAUNCHER_LOG = logging.getLogger('launcher')


def _die_with_parent():
  """In a child, before exec: SIGTERM when the launcher's process dies.

  Linux's PR_SET_PDEATHSIG, so that a learner killed with SIGKILL (or out of
  memory) does not leave its actors running, orphaned, retrying a learner
  that is gone. Elsewhere a no-op (the actors then stop when their
  reconnection times out).
  """
  if not sys.platform.startswith('linux'):
    return
  import ctypes  # pylint: disable=g-import-not-at-top
  pr_set_pdeathsig = 1
  ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _child_environment():
  """This process's environment without TF_CONFIG: a local child's role
  comes from its flags, never from the cluster spec its parent ran with."""
  return {k: v for k, v in os.environ.items() if k != 'TF_CONFIG'}


def _flags(args, skip):
  """The command-line flags that give `args` (argparse values), less `skip`
  and population-based training's (a child is never a population)."""
  flags = []
  for key, value in vars(args).items():
    if (key in skip or key.startswith('pbt_') or value is None
        or value is False):
      continue
    flags.append(f'--{key}' if value is True else f'--{key}={value}')
  return flags


class ActorLauncher:
  """Starts actor processes and restarts any that die (local wiring).

  An actor that exits with status 0 has finished (the learner closed its
  queue: training is over) and one stopped by SIGINT or SIGTERM was stopped
  on purpose: neither is restarted. Any other exit is a death.
  A dead actor is restarted after a delay that doubles with each death in a
  row that came within `fast_failure_s` of its start (from `backoff_s` up to
  `max_backoff_s`): a crash that repeats at once (a bad flag, a missing
  ROM) is not retried every few seconds forever. After `max_fast_failures`
  such deaths in a row the launcher gives up on that actor with a message;
  when it has given up on all of them it calls `on_all_failed` (by default:
  SIGTERM to this process, so the learner checkpoints and stops instead of
  waiting for data that will not come).
  """

  def __init__(self, args, address, backoff_s=1., max_backoff_s=60.,
               fast_failure_s=60., max_fast_failures=5, on_all_failed=None,
               poll_s=0.5):
    self._args = args
    self._address = address
    self._processes = {}
    self._started_at = {}
    self._fast_failures = collections.Counter()
    self._restart_at = {}
    self._given_up = set()
    self._backoff_s = backoff_s
    self._max_backoff_s = max_backoff_s
    self._fast_failure_s = fast_failure_s
    self._max_fast_failures = max_fast_failures
    self._on_all_failed = on_all_failed or (
        lambda: os.kill(os.getpid(), signal.SIGTERM))
    self._poll_s = poll_s
    self._stopping = threading.Event()
    self.restarts = 0

  def _command(self, task):
    argv = [sys.executable, '-m', 'scalable_agent.main', '--role=actor',
            f'--task={task}', f'--learner_address={self._address}']
    skip = {'role', 'task', 'learner_address', 'bind', 'num_actors',
            'connect_timeout_s', 'eval_every_frames', 'eval_episodes'}
    return argv + _flags(self._args, skip)

  def _start_actor(self, task):
    self._processes[task] = subprocess.Popen(
        self._command(task), env=_child_environment(),
        preexec_fn=_die_with_parent)
    self._started_at[task] = time.monotonic()

  def start(self, evaluate_every_frames=0, logdir=None):
    """Starts the actors and, every `evaluate_every_frames` (0: never), a
    `periodic_evaluation` process reading checkpoints in `logdir`."""
    for task in range(self._args.num_actors):
      self._start_actor(task)
    if evaluate_every_frames:
      # Not watched: an evaluator that dies costs curves, not training.
      self._processes['evaluator'] = subprocess.Popen([
          sys.executable, '-m', 'scalable_agent.periodic_evaluation',
          f'--level={self._args.level}', f'--logdir={logdir}',
          f'--every_frames={evaluate_every_frames}',
          f'--episodes={self._args.eval_episodes}',
          f'--seed={self._args.seed}']
          + ([f'--torso={self._args.torso}'] if self._args.torso else [])
          + (['--tf_logs'] if self._args.tf_logs else []),
          env=_child_environment(), preexec_fn=_die_with_parent)
    threading.Thread(target=self._watch, daemon=True).start()

  def _watch(self):
    while not self._stopping.wait(self._poll_s):
      now = time.monotonic()
      for task in range(self._args.num_actors):
        if task in self._given_up:
          continue
        if task in self._restart_at:
          if now >= self._restart_at[task]:
            del self._restart_at[task]
            self.restarts += 1
            self._start_actor(task)
          continue
        code = self._processes[task].poll()
        if not code:
          continue  # Running (None) or finished (0).
        if code in (-signal.SIGINT, -signal.SIGTERM):
          # Stopped on purpose (Ctrl-C reaches the whole process group, or
          # someone sent SIGTERM): not a crash to repair.
          self._given_up.add(task)
          continue
        lived_s = now - self._started_at[task]
        if lived_s < self._fast_failure_s:
          self._fast_failures[task] += 1
        else:
          self._fast_failures[task] = 1
        failures = self._fast_failures[task]
        if failures >= self._max_fast_failures:
          self._given_up.add(task)
          _LAUNCHER_LOG.error(
              'actor %d exited with code %d, its %dth death in a row within '
              '%.0f s of starting; not restarting it. Its own error is '
              'printed above.', task, code, failures, self._fast_failure_s)
          if len(self._given_up) == self._args.num_actors:
            _LAUNCHER_LOG.error('every actor keeps failing: stopping '
                                'training.')
            self._on_all_failed()
          continue
        delay = min(self._backoff_s * 2 ** (failures - 1),
                    self._max_backoff_s)
        _LAUNCHER_LOG.warning('actor %d exited with code %d; restarting it '
                              'in %.0f s.', task, code, delay)
        self._restart_at[task] = now + delay

  def stop(self):
    self._stopping.set()
    for process in self._processes.values():
      if process.poll() is None:
        process.terminate()
    for process in self._processes.values():
      try:
        process.wait(timeout=10)
      except subprocess.TimeoutExpired:
        process.kill()


# Population-based training's settings, passed on to each member.
_PBT_FLAGS = ('pbt_burn_in_frames', 'pbt_ready_episodes', 'pbt_threshold',
              'pbt_perturb_probability', 'pbt_perturb_factor')


def member_command(args, member, pbt_dir, member_logdir):
  """`scalable_agent` for member `member` of a local PBT population: a
  learner with its own actors, its own logdir and seed, the shared
  `pbt_dir`."""
  argv = [sys.executable, '-m', 'scalable_agent.main',
          f'--pbt_member={member}', f'--pbt_dir={pbt_dir}',
          f'--logdir={member_logdir}', f'--seed={args.seed + 1000 * member}']
  argv += [f'--{key}={getattr(args, key)}' for key in _PBT_FLAGS
           if getattr(args, key) is not None]
  return argv + _flags(args, {'logdir', 'seed', 'bind', 'task'})


def run_population(args, pbt_dir, member_logdir):
  """Runs `args.pbt_population` members as local processes until they all
  end; Ctrl-C or SIGTERM is passed on to them (each checkpoints).

  Args:
    member_logdir: callable, member index -> its logdir.

  Returns:
    the number of members that failed.
  """
  log = logging.getLogger('launcher')
  members = [subprocess.Popen(member_command(args, i, pbt_dir,
                                             member_logdir(i)),
                              env=_child_environment(),
                              preexec_fn=_die_with_parent)
             for i in range(args.pbt_population)]
  log.info('%d PBT members started; shared directory %s', len(members),
           pbt_dir)

  def forward(signum, frame):
    del frame
    for process in members:
      if process.poll() is None:
        process.send_signal(signum)

  previous = {s: signal.signal(s, forward)
              for s in (signal.SIGINT, signal.SIGTERM)}
  try:
    codes = [process.wait() for process in members]
  finally:
    for s, handler in previous.items():
      signal.signal(s, handler)
  failed = sum(1 for code in codes if code not in (0, -signal.SIGINT,
                                                   -signal.SIGTERM))
  if failed:
    log.error('%d of %d members failed (exit statuses %s).', failed,
              len(members), codes)
  return failed
