"""`scalable_agent`: train IMPALA on a level. One program, three wirings.

  Local (the default): this process is the learner and starts
  `--num_actors` actor processes on this machine, restarting any that die.

      scalable_agent --level=pong

  Cluster: the same program with a role. The learner listens on `--bind`
  (localhost unless told otherwise); actors on other machines join it.

      scalable_agent --role=learner --level=pong --bind=0.0.0.0:8470
      scalable_agent --role=actor --task=0 --level=pong \\
          --learner_address=learner-host:8470

  The cluster can also come from a TF_CONFIG environment variable:
  {"cluster": {"learner": ["host:8470"]}, "task": {"type": "actor",
  "index": 0}} gives the role, task index and learner address.

  Single process: learner and actors as threads of one process, no network
  (tests, debugging).

      scalable_agent --role=single_process --level=CartPole-v1

Training stops at the frame budget; Ctrl-C (SIGINT) or SIGTERM checkpoints
and stops. Run the same command again to resume from the newest checkpoint in
--logdir.
"""

import argparse
import collections
import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time


def parse_args(argv=None):
  parser = argparse.ArgumentParser(
      prog='scalable_agent', description=__doc__.split('\n')[0],
      formatter_class=argparse.RawDescriptionHelpFormatter)
  add = parser.add_argument
  add('--level', default='pong',
      help='Atari game (pong), DMLab-30 level, atari57, dmlab30, or a '
      'gymnasium id with discrete actions (CartPole-v1).')
  add('--role', default='local',
      choices=['local', 'learner', 'actor', 'single_process'])
  add('--num_actors', type=int, default=2,
      help='Actor processes (local) or threads (single_process).')
  add('--envs_per_actor', type=int, default=None,
      help='Environments each actor steps together (default: 32 Atari, '
      '4 DMLab, 8 gymnasium).')
  add('--task', type=int, default=0, help='Actor index (role=actor).')
  add('--learner_address', default='localhost:8470',
      help='host:port of the learner (role=actor).')
  add('--connect_timeout_s', type=float, default=120.,
      help='How long an actor waits for the learner to come up.')
  add('--bind', default=None,
      help='host:port the learner listens on (default localhost:8470 for '
      'role=learner, a free localhost port for local).')
  add('--logdir', default=None,
      help='Checkpoints and TensorBoard logs (default runs/<level>).')
  add('--torso', default=None, choices=['shallow', 'deep', 'nature', 'mlp'],
      help="Agent torso (default: the suite's: shallow Atari, deep DMLab).")
  add('--seed', type=int, default=0)
  add('--queue_capacity', type=int, default=None,
      help='Unrolls the learner queues (default 2 batches).')
  add('--checkpoint_every_s', type=float, default=600.)
  add('--log_every_s', type=float, default=10.)
  add('--eval_every_frames', type=float, default=None,
      help='Local wiring: a process plays the newest checkpoint each time '
      'training passes a multiple of this many frames, greedy and sampled, '
      'with the evaluation protocol (TensorBoard: <logdir>/evaluation). '
      'Default 1e6 for one Atari game, else off; 0 turns it off.')
  add('--eval_episodes', type=int, default=4,
      help='Episodes per policy (greedy, sampled) per evaluation.')
  add('--dataset_path', default=None,
      help='DMLab psychlab dataset (Brady, Konkle, Oliva 2008).')
  add('--level_cache_dir', default=None,
      help='DMLab compiled-map cache directory.')
  add('--intra_op_threads', type=int, default=None,
      help='TensorFlow threads per op (actors default to 1).')
  add('--hparams', default='default', choices=['default', 'paper'],
      help="The suite's learner settings: this project's defaults, or the "
      "paper's exactly (Atari: Table G.1). BUILD_NOTES.md says how they "
      'differ and why. The flags below override single values.')
  # Learner settings; unset ones take the --hparams set's values.
  add('--batch_size', type=int)
  add('--unroll_length', type=int)
  add('--total_environment_frames', type=float,
      help='Frames of the learning-rate schedule (linear to 0); training '
      'stops there unless --stop_at_frames is smaller.')
  add('--stop_at_frames', type=float,
      help='Stop training after this many frames, keeping the schedule.')
  add('--learning_rate', type=float)
  add('--entropy_cost', type=float)
  add('--baseline_cost', type=float)
  add('--discounting', type=float)
  add('--reward_clipping', choices=['abs_one', 'soft_asymmetric', 'none'])
  add('--epsilon', type=float)
  add('--initial_mean_square', type=float,
      help="RMSProp accumulator's start (TF1, the paper: 1).")
  add('--max_gradient_norm', type=float,
      help='Global-norm gradient clipping; 0 turns it off.')
  args = parser.parse_args(argv)
  _apply_tf_config(args)
  return args


def _apply_tf_config(args):
  """Fills role, task and learner address from TF_CONFIG, if set."""
  tf_config = os.environ.get('TF_CONFIG')
  if not tf_config:
    return
  try:
    config = json.loads(tf_config)
    task = config['task']
    learners = config['cluster']['learner']
  except (ValueError, KeyError, TypeError) as e:
    raise SystemExit(
        f'TF_CONFIG is not a valid cluster spec ({e!r}); expected '
        '{"cluster": {"learner": ["host:port"], ...}, "task": {"type": '
        '"actor", "index": 0}}.') from None
  args.role = task['type']
  args.task = int(task.get('index', 0))
  args.learner_address = learners[0]
  if args.role == 'learner' and args.bind is None:
    args.bind = learners[0]


def hyperparameters(args, config):
  """The suite's settings (--hparams) with the command line's overrides."""
  base = config.paper_hparams if args.hparams == 'paper' else config.hparams
  overrides = {f.name: getattr(args, f.name)
               for f in dataclasses.fields(base)
               if getattr(args, f.name, None) is not None}
  overrides['num_action_repeats'] = config.suite.num_action_repeats
  return dataclasses.replace(base, **overrides)


def _envs_per_actor(args, config):
  return args.envs_per_actor or config.suite.envs_per_actor


def _configure_tensorflow(args, role):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  # Seeds the learner's initial weights and each actor's action sampling
  # (actors differ by task index). Runs are still not bit-reproducible:
  # which actor's unrolls the learner takes first depends on timing.
  tf.random.set_seed(args.seed + (1 + args.task if role == 'actor' else 0))
  threads = args.intra_op_threads or (1 if role == 'actor' else None)
  if threads:
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def _resolve_level(args):
  """--level -> suites.LevelConfig; a clean exit if the name is unknown."""
  from scalable_agent import suites  # pylint: disable=g-import-not-at-top
  try:
    return suites.resolve(args.level)
  except ValueError as e:
    raise SystemExit(f'scalable_agent: error: {e}') from None


def _logdir(args):
  return args.logdir or os.path.join('runs', args.level.replace('/', '_'))


class Setup:
  """What every role builds from the flags: level, environment, agent.

  Args:
    args: parsed flags.
    actor_index: which actor this is (seeds and level assignment).
    num_envs: environments to build (default: --envs_per_actor). The learner
      builds one, only to learn the unroll specs.
  """

  def __init__(self, args, actor_index=0, num_envs=None):
    from scalable_agent import actor as actor_lib  # pylint: disable=g-import-not-at-top
    from scalable_agent import suites  # pylint: disable=g-import-not-at-top
    self.args = args
    self.config = _resolve_level(args)
    self.hparams = hyperparameters(args, self.config)
    self.envs_per_actor = num_envs or _envs_per_actor(args, self.config)
    self.logdir = _logdir(args)

    self.suite = self.config.suite
    self.env = self.suite.make_environment(
        self.config, self.envs_per_actor,
        seed=args.seed + actor_index * self.envs_per_actor,
        first_env_index=actor_index * self.envs_per_actor,
        options=suites.EnvironmentOptions(
            dataset_path=args.dataset_path,
            level_cache_dir=args.level_cache_dir))
    self.agent = self.suite.make_agent(self.env.num_actions, args.torso)
    self.actor = actor_lib.Actor(self.agent, self.env,
                                 self.hparams.unroll_length)
    self.specs = self.actor.specs


def _make_learner(setup):
  """The learner, with its own agent: actors' copies follow its parameters."""
  from scalable_agent import learner as learner_lib  # pylint: disable=g-import-not-at-top
  agent = setup.suite.make_agent(setup.env.num_actions, setup.args.torso)
  return learner_lib.Learner(agent, setup.specs, setup.hparams)


def _training_loop(setup, learner, queue, endpoint):
  from scalable_agent import training  # pylint: disable=g-import-not-at-top
  loop = training.TrainingLoop(
      learner, queue, endpoint, setup.logdir,
      setup.suite.level_names(setup.config), setup.suite,
      num_trained_levels=len(setup.config.levels),
      checkpoint_every_s=setup.args.checkpoint_every_s,
      log_every_s=setup.args.log_every_s,
      stop_at_frames=setup.args.stop_at_frames,
      checkpoint_every_frames=_eval_every_frames(setup.args, setup.config))
  restored = loop.restore()
  print(f'[learner] level {setup.args.level}, {setup.suite.name} suite; '
        f'logdir {setup.logdir}'
        + (f'; resumed from {restored}' if restored else ''), flush=True)
  return loop


def _eval_every_frames(args, config):
  """Frames between evaluations during training; 0 if there are none."""
  if args.role != 'local':
    return 0  # Elsewhere, run python -m scalable_agent.periodic_evaluation.
  if args.eval_every_frames is not None:
    return int(args.eval_every_frames)
  return config.suite.eval_every_frames(config)


def _queue_capacity(setup):
  return setup.args.queue_capacity or 2 * setup.hparams.batch_size


def _stop_on_signals(loop):
  """SIGINT/SIGTERM: finish the step, checkpoint, stop."""
  def handler(signum, frame):
    del frame
    print(f'[learner] {signal.Signals(signum).name}: checkpointing and '
          'stopping.', flush=True)
    loop.stop()
  signal.signal(signal.SIGINT, handler)
  signal.signal(signal.SIGTERM, handler)


def _run_loop_in_thread(loop):
  """Runs the loop in a thread so the main thread can take signals while the
  loop is blocked inside TensorFlow waiting for data."""
  result = {}

  def target():
    try:
      result['steps'] = loop.run()
    except BaseException as e:  # pylint: disable=broad-except
      result['error'] = e

  thread = threading.Thread(target=target, name='training_loop', daemon=True)
  thread.start()
  while thread.is_alive():
    thread.join(timeout=0.5)
  if 'error' in result:
    raise result['error']
  return result.get('steps', 0)


def run_single_process(args):
  """Learner and actors as threads of this process (no network)."""
  from scalable_agent import actor as actor_lib  # pylint: disable=g-import-not-at-top
  from scalable_agent import training  # pylint: disable=g-import-not-at-top
  from scalable_agent import transport  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  setups = [Setup(args, i) for i in range(args.num_actors)]
  learner = _make_learner(setups[0])
  queue = transport.UnrollQueue(setups[0].specs, _queue_capacity(setups[0]))
  endpoint = training.LearnerEndpoint(learner.agent.trainable_variables, queue)
  loop = _training_loop(setups[0], learner, queue, endpoint)
  stopping = threading.Event()

  def act(setup):
    connection = actor_lib.InProcessConnection(endpoint)
    try:
      actor_lib.run_actor(setup.actor, connection,
                          should_stop=stopping.is_set)
    except (tf.errors.CancelledError, tf.errors.OutOfRangeError):
      pass  # The queue closed: training is over.

  threads = [threading.Thread(target=act, args=(s,), daemon=True)
             for s in setups]
  for t in threads:
    t.start()
  _stop_on_signals(loop)
  try:
    _run_loop_in_thread(loop)
  finally:
    stopping.set()
    queue.close()
  return loop


def run_learner(args, bind):
  """The learner: gRPC server, queue, training loop, checkpoints."""
  from scalable_agent import transport  # pylint: disable=g-import-not-at-top
  setup = Setup(args, num_envs=1)
  setup.env.close()  # Built only to learn the observation and action specs.
  learner = _make_learner(setup)
  server = transport.LearnerServer(bind, setup.specs, _queue_capacity(setup),
                                   learner.agent.trainable_variables)
  print(f'[learner] listening on {server.address}', flush=True)
  loop = _training_loop(setup, learner, server.unroll_queue, server)
  _stop_on_signals(loop)
  try:
    _run_loop_in_thread(loop)
  finally:
    server.close()
  return loop


def run_actor_process(args):
  """One actor: connect to the learner, then act until it goes away."""
  from scalable_agent import actor as actor_lib  # pylint: disable=g-import-not-at-top
  from scalable_agent import transport  # pylint: disable=g-import-not-at-top
  setup = Setup(args, actor_index=args.task)
  print(f'[actor {args.task}] {setup.envs_per_actor} environments of '
        f'{args.level}; connecting to the learner at {args.learner_address}',
        flush=True)
  try:
    client = transport.ActorClient(args.learner_address, setup.specs,
                                   connect_timeout_s=args.connect_timeout_s)
    actor_lib.run_actor(setup.actor, client)
  except transport.LearnerClosedError:
    print(f'[actor {args.task}] the learner closed; stopping.', flush=True)
  except transport.LearnerUnavailableError as e:
    raise SystemExit(f'[actor {args.task}] error: {e}') from None


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
    for key, value in vars(self._args).items():
      if key not in skip and value is not None:
        argv.append(f'--{key}={value}')
    return argv

  def _start_actor(self, task):
    self._processes[task] = subprocess.Popen(self._command(task))
    self._started_at[task] = time.monotonic()

  def start(self, evaluate_every_frames=0):
    for task in range(self._args.num_actors):
      self._start_actor(task)
    if evaluate_every_frames:
      # Not watched: an evaluator that dies costs curves, not training.
      self._processes['evaluator'] = subprocess.Popen([
          sys.executable, '-m', 'scalable_agent.periodic_evaluation',
          f'--level={self._args.level}', f'--logdir={_logdir(self._args)}',
          f'--every_frames={evaluate_every_frames}',
          f'--episodes={self._args.eval_episodes}',
          f'--seed={self._args.seed}'] + (
              [f'--torso={self._args.torso}'] if self._args.torso else []))
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
          print(f'[launcher] actor {task} exited with code {code}, its '
                f'{failures}th death in a row within '
                f'{self._fast_failure_s:.0f} s of starting; not restarting '
                'it. Its own error is printed above.', flush=True)
          if len(self._given_up) == self._args.num_actors:
            print('[launcher] every actor keeps failing: stopping training.',
                  flush=True)
            self._on_all_failed()
          continue
        delay = min(self._backoff_s * 2 ** (failures - 1),
                    self._max_backoff_s)
        print(f'[launcher] actor {task} exited with code {code}; restarting '
              f'it in {delay:.0f} s.', flush=True)
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


def run_local(args):
  """Learner here, actors as local processes (the default)."""
  from scalable_agent import transport  # pylint: disable=g-import-not-at-top
  bind = args.bind or f'localhost:{transport.free_port()}'
  launcher = ActorLauncher(args, bind)
  # Actors start while the learner builds; they wait for it to listen.
  launcher.start(_eval_every_frames(args, _resolve_level(args)))
  try:
    return run_learner(args, bind)
  finally:
    launcher.stop()


def run(argv=None):
  """The `scalable_agent` command. Returns None (exit status 0) on success:
  console scripts pass the return value to sys.exit."""
  args = parse_args(argv)
  _configure_tensorflow(args, args.role)
  if args.role == 'actor':
    run_actor_process(args)
  elif args.role == 'learner':
    run_learner(args, args.bind or 'localhost:8470')
  elif args.role == 'single_process':
    run_single_process(args)
  else:
    run_local(args)


if __name__ == '__main__':
  run()
