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

  A learner across hosts: several learner workers, each with its own actors
  and unroll queue, all-reduce their gradients every step over TensorFlow's
  collective runtime (`MultiWorkerMirroredStrategy`). Each worker needs a
  second address for it, in the same order:

      {"cluster": {"learner": ["h0:8470", "h1:8470"],
                   "learner_collective": ["h0:8471", "h1:8471"],
                   "actor": [...]},
       "task": {"type": "learner", "index": 1}}

  (or --task=1 --collective_addresses=h0:8471,h1:8471). Worker 0 is the
  chief: it writes checkpoints and summaries. Actor i joins learner worker
  i mod the number of workers; --batch_size is the global batch.

  Single process: learner and actors as threads of one process, no network
  (tests, debugging).

      scalable_agent --role=single_process --level=CartPole-v1

Training stops at the frame budget; Ctrl-C (SIGINT) or SIGTERM checkpoints
and stops. Run the same command again to resume from the newest checkpoint in
--logdir.
"""

import argparse
import dataclasses
import json
import logging
import math
import os
import signal
import threading

from scalable_agent import console
from scalable_agent import launcher as launcher_lib
from scalable_agent import pbt


def parse_args(argv=None):
  parser = argparse.ArgumentParser(
      prog='scalable_agent', description=__doc__.split('\n')[0],
      formatter_class=argparse.RawDescriptionHelpFormatter)
  add = parser.add_argument
  add('--level', default='pong',
      help='Atari game (pong), DMLab-30 level, atari57, dmlab30, or a '
      'gymnasium id with discrete actions (CartPole-v1).')
  add('--role', default=None,
      choices=['local', 'learner', 'actor', 'single_process'],
      help='Default: local, or the task type of TF_CONFIG if it is set. An '
      'explicit --role wins over TF_CONFIG.')
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
  add('--collective_addresses', default=None,
      help='role=learner with several learner workers: host:port of every '
      "worker's collective (all-reduce) server, comma-separated, the same "
      'list on each; --task is this worker\'s index (0: the chief).')
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
  add('--checkpoint_every_s', type=float, default=120.,
      help='Seconds between checkpoints (and the first one). One costs '
      '0.04-1.7 s on 2 cores (0.7M-1.6M parameters): under 1.5%% of the '
      'time at 120 s, and at most 2 minutes lost to a crash.')
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
  add('--skip_unavailable_levels', action='store_true',
      help='Train on the levels of --level that can run on this machine and '
      'skip the others, naming them (DMLab: natlab levels without their '
      'maps, psychlab levels without --dataset_path; `python -m '
      'dmlab30.installation` lists them). Without it such a run refuses to '
      'start.')
  add('--bfloat16', action='store_true',
      help="Run the agent's torso in bfloat16 (mixed precision; the core, "
      'heads, loss and variables stay float32), in the learner and the '
      'actors. Pays on hardware with bfloat16 arithmetic (GPUs, CPUs with '
      'AVX512_BF16 or AMX): docs/benchmarks.')
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
  add('--optimizer', choices=['rmsprop', 'adam'],
      help='rmsprop (TF1 semantics, the paper) or adam (--epsilon is then '
      "Adam's, outside the square root).")
  add('--max_gradient_norm', type=float,
      help='Global-norm gradient clipping; 0 turns it off.')
  add('--off_policy_correction',
      choices=['vtrace', 'one_step', 'epsilon', 'none'],
      help="The paper's Table 2 variants (scalable_agent/corrections.py); "
      'default vtrace.')
  add('--replay_capacity', type=int,
      help='Experience replay: keep the last N unrolls on the learner (the '
      'paper: 10000; memory N x one unroll, allocated at start); default 0, '
      'no replay.')
  add('--replay_fraction', type=float,
      help='With replay: the fraction of each batch drawn from the buffer '
      '(default 0.5, the paper\'s).')
  # Population-based training (scalable_agent/pbt.py); defaults: the paper.
  add('--pbt_population', type=int,
      help='Run this many PBT members locally, each a learner with its own '
      'actors, under --logdir (the shared PBT directory).')
  add('--pbt_dir',
      help='The shared PBT directory of a member (a path tf.io.gfile '
      'reads: local, NFS, gs://); set by --pbt_population, or given to each '
      'learner of a cluster.')
  add('--pbt_member', type=int,
      help='This learner\'s member index (default with --pbt_dir: --task).')
  add('--pbt_burn_in_frames', type=float, default=pbt.PAPER['burn_in_frames'])
  add('--pbt_ready_episodes', type=int, default=pbt.PAPER['ready_episodes'],
      help='A member is ready after this many more episode returns.')
  add('--pbt_threshold', type=float, default=pbt.PAPER['threshold'],
      help='Copy a member better by more than this (scalable_agent/pbt.py).')
  add('--pbt_perturb_probability', type=float,
      default=pbt.PAPER['perturb_probability'])
  add('--pbt_perturb_factor', type=float,
      default=pbt.PAPER['perturb_factor'])
  console.add_flags(parser)
  args = parser.parse_args(argv)
  _check_numbers(parser, args)
  return args


# Flags that must be at least 1, and those that must be positive, if given.
_AT_LEAST_ONE = ('num_actors', 'envs_per_actor', 'batch_size', 'unroll_length',
                 'queue_capacity', 'eval_episodes', 'pbt_population',
                 'pbt_ready_episodes')
_POSITIVE = ('total_environment_frames', 'stop_at_frames', 'learning_rate',
             'connect_timeout_s', 'discounting')
# (0 s between logs or checkpoints: at every step.)
_NOT_NEGATIVE = ('task', 'entropy_cost', 'baseline_cost', 'epsilon',
                 'initial_mean_square', 'max_gradient_norm',
                 'replay_capacity', 'replay_fraction', 'pbt_member',
                 'pbt_burn_in_frames', 'pbt_threshold',
                 'pbt_perturb_probability',
                 'eval_every_frames', 'checkpoint_every_s', 'log_every_s')


def _check_numbers(parser, args):
  """One-line errors for values that would hang or crash a run later
  (--unroll_length=0 trains for ever at 0 frames; --learning_rate=inf makes
  every parameter NaN at the first update)."""
  for name, value in sorted(vars(args).items()):
    if isinstance(value, float) and not math.isfinite(value):
      parser.error(f'--{name} must be a finite number, got {value}.')
  for names, ok, wanted in ((_AT_LEAST_ONE, lambda v: v >= 1, '>= 1'),
                            (_POSITIVE, lambda v: v > 0, '> 0'),
                            (_NOT_NEGATIVE, lambda v: v >= 0, '>= 0')):
    for name in names:
      value = getattr(args, name)
      if value is not None and not ok(value):
        parser.error(f'--{name} must be {wanted}, got {value}.')
  if args.discounting is not None and args.discounting > 1:
    parser.error(f'--discounting must be in (0, 1], got {args.discounting}.')
  if args.pbt_perturb_factor is not None and args.pbt_perturb_factor <= 1:
    parser.error('--pbt_perturb_factor must be > 1 (values are multiplied '
                 f'by it or its inverse), got {args.pbt_perturb_factor}.')
  if args.replay_fraction is not None and args.replay_fraction >= 1:
    parser.error('--replay_fraction must be in [0, 1) (the rest of each '
                 f'batch is fresh), got {args.replay_fraction}.')


# Task types a TF_CONFIG may name, and the role each runs.
_TF_CONFIG_ROLES = ('learner', 'actor')


def apply_tf_config(args):
  """Settles the role: --role if given, else TF_CONFIG's task, else local.

  TensorFlow's `TFConfigClusterResolver` reads TF_CONFIG; the cluster needs
  a 'learner' job (its first address is the learner's) and the task a type
  of `_TF_CONFIG_ROLES` with an index >= 0. An explicit --role ignores
  TF_CONFIG: that is what keeps the actors the local launcher starts (with
  --role=actor) actors, whatever environment they inherit.
  """
  if args.role is not None or not os.environ.get('TF_CONFIG'):
    args.role = args.role or 'local'
    return
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  expected = ('expected {"cluster": {"learner": ["host:port"], ...}, "task": '
              '{"type": "actor", "index": 0}}')
  try:
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    learners = resolver.cluster_spec().as_dict().get('learner')
    role = resolver.task_type
  except ValueError as e:  # Includes json.JSONDecodeError.
    raise SystemExit(f'TF_CONFIG is not a valid cluster spec ({e}); '
                     f'{expected}.') from None
  if not learners or not role:
    raise SystemExit('TF_CONFIG is not a valid cluster spec (no learner job '
                     f'or no task type); {expected}.')
  if role not in _TF_CONFIG_ROLES:
    raise SystemExit(f'TF_CONFIG names the task type {role!r}; this program '
                     f'runs {" or ".join(_TF_CONFIG_ROLES)} tasks.')
  task = int(resolver.task_id or 0)
  if task < 0:
    raise SystemExit(f'TF_CONFIG task index must be >= 0, got {task}.')
  collective = resolver.cluster_spec().as_dict().get('learner_collective')
  if collective is not None and len(collective) != len(learners):
    raise SystemExit(
        f'TF_CONFIG lists {len(learners)} learner and {len(collective)} '
        'learner_collective addresses; each learner worker needs one of '
        'each, in the same order.')
  if len(learners) > 1 and collective is None:
    raise SystemExit(
        f'TF_CONFIG lists {len(learners)} learners but no '
        '"learner_collective" job: each learner worker needs a second '
        'address for the all-reduce of gradients (README, "Across hosts").')
  if role == 'learner' and task >= len(learners):
    raise SystemExit(f'TF_CONFIG task index {task} is past the '
                     f'{len(learners)} learner addresses.')
  args.role = role
  args.task = task
  # Actor i joins learner worker i mod the number of workers; learner
  # worker i is learners[i].
  args.learner_address = learners[task % len(learners)]
  if args.role == 'learner':
    if args.bind is None:
      args.bind = learners[task]
    if collective is not None and len(collective) > 1:
      args.collective_addresses = ','.join(collective)


def hyperparameters(args, config):
  """The suite's settings (--hparams) with the command line's overrides."""
  base = config.paper_hparams if args.hparams == 'paper' else config.hparams
  overrides = {f.name: getattr(args, f.name)
               for f in dataclasses.fields(base)
               if getattr(args, f.name, None) is not None}
  overrides['num_action_repeats'] = config.suite.num_action_repeats
  try:
    return dataclasses.replace(base, **overrides)
  except ValueError as e:  # Settings that do not fit together.
    raise SystemExit(f'error: {e}') from None


def _envs_per_actor(args, config):
  return args.envs_per_actor or config.suite.envs_per_actor


def _configure_tensorflow(args, role):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  # Seeds the learner's initial weights and each actor's action sampling
  # (actors differ by task index). Runs are still not bit-reproducible:
  # which actor's unrolls the learner takes first depends on timing.
  tf.random.set_seed(args.seed + (1 + args.task if role == 'actor' else 0))
  if args.bfloat16:
    from scalable_agent import networks  # pylint: disable=g-import-not-at-top
    networks.use_bfloat16()
  threads = args.intra_op_threads or (1 if role == 'actor' else None)
  if threads:
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def _resolve_level(args, quiet=False):
  """--level -> suites.LevelConfig of the levels that can run here; a clean
  exit if the name is unknown or a level cannot run (unless
  --skip_unavailable_levels, which drops it)."""
  from scalable_agent import suites  # pylint: disable=g-import-not-at-top
  try:
    config, skipped = suites.runnable(
        suites.resolve(args.level), _environment_options(args),
        skip_unavailable=args.skip_unavailable_levels)
  except ValueError as e:
    raise SystemExit(f'scalable_agent: error: {e}') from None
  if skipped and args.role != 'actor' and not quiet:
    # Said once, by the process that trains (or the one that starts them).
    logging.getLogger('learner').warning(
        'skipping %d levels of %s that cannot run here: %s',
        len(skipped), args.level, '; '.join(
            f'{level} ({why})' for level, why in skipped.items()))
  return config


def _environment_options(args):
  from scalable_agent import suites  # pylint: disable=g-import-not-at-top
  return suites.EnvironmentOptions(dataset_path=args.dataset_path,
                                   level_cache_dir=args.level_cache_dir)


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
        options=_environment_options(args))
    self.agent = self.suite.make_agent(self.env.num_actions, args.torso)
    self.actor = actor_lib.Actor(self.agent, self.env,
                                 self.hparams.unroll_length)
    self.specs = self.actor.specs


def _make_learner(setup, strategy=None):
  """The learner, with its own agent: actors' copies follow its parameters."""
  from scalable_agent import learner as learner_lib  # pylint: disable=g-import-not-at-top
  agent = setup.suite.make_agent(setup.env.num_actions, setup.args.torso)
  try:
    return learner_lib.Learner(agent, setup.specs, setup.hparams, strategy)
  except ValueError as e:  # A batch that does not divide among workers.
    raise SystemExit(f'error: {e}') from None


def _multi_worker_strategy(args):
  """The learner workers' strategy (--collective_addresses), or None for a
  learner on one host. Made before TensorFlow runs an op in this process."""
  if not args.collective_addresses:
    return None
  from scalable_agent import learner as learner_lib  # pylint: disable=g-import-not-at-top
  addresses = args.collective_addresses.split(',')
  if args.task >= len(addresses):
    raise SystemExit(f'error: --task={args.task} is past the '
                     f'{len(addresses)} --collective_addresses.')
  if args.pbt_population:
    raise SystemExit('error: population-based training runs one learner '
                     'process per member; it does not take several learner '
                     'workers (--collective_addresses).')
  logging.getLogger('learner').info(
      'learner worker %d of %d%s; all-reduce over %s', args.task,
      len(addresses), ' (chief)' if args.task == 0 else '',
      args.collective_addresses)
  return learner_lib.multi_worker_strategy(addresses, args.task)


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
  check_run_identity(setup.logdir, run_identity(setup))
  member = _pbt_member(setup, loop)
  restored = loop.restore()
  if member is not None:
    member.start(restored, loop.learner.tunable.values())
    loop.pbt_member = member
  logging.getLogger('learner').info(
      'level %s, %s suite; logdir %s%s', setup.args.level, setup.suite.name,
      setup.logdir, f'; resumed from {restored}' if restored else '')
  return loop


def _pbt_member(setup, loop):
  """This learner's `pbt.Member` if it belongs to a population, else None."""
  args = setup.args
  if not args.pbt_dir:
    return None
  member = args.pbt_member if args.pbt_member is not None else args.task
  settings = pbt.Settings(
      directory=args.pbt_dir, member=member,
      burn_in_frames=args.pbt_burn_in_frames,
      ready_episodes=args.pbt_ready_episodes, threshold=args.pbt_threshold,
      perturb_probability=args.pbt_perturb_probability,
      perturb_factor=args.pbt_perturb_factor,
      tuned=pbt.tuned_names(setup.suite.name))
  multi_level = len(setup.config.levels) > 1
  kind = ('human_normalized' if multi_level and setup.suite.references()
          else 'return')
  return pbt.Member(settings, loop, kind, seed=args.seed)


def run_identity(setup):
  """What a logdir's checkpoints were trained for: levels, suite, torso,
  and the learner settings (for the record)."""
  return {'level': setup.args.level, 'levels': list(setup.config.levels),
          'suite': setup.suite.name,
          'torso': setup.args.torso or setup.suite.default_torso,
          'hparams': dataclasses.asdict(setup.hparams)}


def check_run_identity(logdir, identity):
  """Refuses to resume a logdir trained on other levels or another torso.

  The first run writes `<logdir>/run.json`; later runs compare against it
  (a Pong checkpoint would otherwise resume as Space Invaders: both games
  have 6 actions and the same observation shape). Other settings may
  change between runs (e.g. --stop_at_frames); a changed learner setting
  is logged.
  """
  path = os.path.join(logdir, 'run.json')
  if not os.path.exists(path):
    os.makedirs(logdir, exist_ok=True)
    with open(path, 'w') as f:
      json.dump(identity, f, indent=1)
    return
  with open(path) as f:
    recorded = json.load(f)
  for key in ('levels', 'suite', 'torso'):
    if recorded.get(key) != identity[key]:
      raise SystemExit(
          f'scalable_agent: error: {logdir} holds a run with {key} '
          f'{recorded.get(key)!r} (--level={recorded.get("level")}, '
          f'--torso={recorded.get("torso")}), not {identity[key]!r}: pass '
          'those flags to resume it, or another --logdir for a new run.')
  changed = {k: (v, identity['hparams'].get(k))
             for k, v in recorded.get('hparams', {}).items()
             if identity['hparams'].get(k) != v}
  if changed:
    logging.getLogger('learner').warning(
        'resuming with other learner settings than %s: %s', path,
        ', '.join(f'{k} {a} -> {b}' for k, (a, b) in changed.items()))


def _eval_every_frames(args, config):
  """Frames between evaluations during training; 0 if there are none."""
  if args.role != 'local':
    return 0  # Elsewhere, run python -m scalable_agent.periodic_evaluation.
  if args.eval_every_frames is not None:
    return int(args.eval_every_frames)
  return config.suite.eval_every_frames(config)


def _value_ranges(setup):
  from scalable_agent import learner as learner_lib  # pylint: disable=g-import-not-at-top
  return learner_lib.unroll_value_ranges(
      setup.env.num_actions, len(setup.suite.level_names(setup.config)))


def _run_description(setup):
  """What actors and learner must agree on beyond the unroll specs."""
  return (f'levels={",".join(setup.config.levels)} '
          f'torso={setup.args.torso or setup.suite.default_torso}')


def _queue_capacity(setup):
  return setup.args.queue_capacity or 2 * setup.hparams.batch_size


def _stop_on_signals(loop):
  """SIGINT/SIGTERM: finish the step, checkpoint, stop."""
  def handler(signum, frame):
    del frame
    logging.getLogger('learner').info('%s: checkpointing and stopping.',
                                      signal.Signals(signum).name)
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
  queue = transport.UnrollQueue(setups[0].specs, _queue_capacity(setups[0]),
                                _value_ranges(setups[0]))
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
  """The learner (or one learner worker): gRPC server, queue, training loop,
  checkpoints."""
  from scalable_agent import transport  # pylint: disable=g-import-not-at-top
  strategy = _multi_worker_strategy(args)
  setup = Setup(args, num_envs=1)
  setup.env.close()  # Built only to learn the observation and action specs.
  learner = _make_learner(setup, strategy)
  server = transport.LearnerServer(bind, setup.specs, _queue_capacity(setup),
                                   learner.agent.trainable_variables,
                                   _value_ranges(setup),
                                   run_description=_run_description(setup))
  logging.getLogger('learner').info('listening on %s', server.address)
  loop = _training_loop(setup, learner, server.unroll_queue, server)
  _stop_on_signals(loop)
  try:
    _run_loop_in_thread(loop)
  finally:
    # After a finish, actors that call in the next seconds hear that
    # training is over and exit 0 (their next unroll is a few seconds away
    # at most). After Ctrl-C or SIGTERM, no waiting.
    server.close(grace_s=0 if loop.stop_requested else _ACTOR_GRACE_S)
  return loop


# How long a finished learner keeps telling actors that it has finished.
_ACTOR_GRACE_S = 10.


def run_actor_process(args):
  """One actor: connect to the learner, then act until it goes away."""
  from scalable_agent import actor as actor_lib  # pylint: disable=g-import-not-at-top
  from scalable_agent import transport  # pylint: disable=g-import-not-at-top
  setup = Setup(args, actor_index=args.task)
  log = logging.getLogger(f'actor {args.task}')
  log.info('%d environments of %s; connecting to the learner at %s',
           setup.envs_per_actor, args.level, args.learner_address)
  try:
    client = transport.ActorClient(args.learner_address, setup.specs,
                                   connect_timeout_s=args.connect_timeout_s,
                                   run_description=_run_description(setup))
    actor_lib.run_actor(setup.actor, client)
  except transport.LearnerClosedError:
    log.info('the learner closed; stopping.')
  except KeyboardInterrupt:
    # Ctrl-C in a terminal reaches the whole process group: the learner
    # checkpoints, and an actor holds nothing worth keeping.
    log.info('interrupted; stopping.')
  except (transport.LearnerUnavailableError,
          transport.UnrollRejectedError) as e:
    raise SystemExit(f'[actor {args.task}] error: {e}') from None


def run_local(args):
  """Learner here, actors as local processes (the default)."""
  from scalable_agent import transport  # pylint: disable=g-import-not-at-top
  bind = args.bind or f'localhost:{transport.free_port()}'
  launcher = launcher_lib.ActorLauncher(args, bind)
  # Actors start while the learner builds; they wait for it to listen.
  launcher.start(_eval_every_frames(args, _resolve_level(args, quiet=True)),
                 _logdir(args))
  try:
    return run_learner(args, bind)
  finally:
    launcher.stop()


def run(argv=None):
  """The `scalable_agent` command. Returns None (exit status 0) on success:
  console scripts pass the return value to sys.exit."""
  args = parse_args(argv)
  console.setup(args.tf_logs)
  apply_tf_config(args)
  if args.pbt_population and args.pbt_member is None and args.role in (
      'local', 'single_process'):
    # A local population: one process per member, each with its actors.
    logdir = _logdir(args)
    failed = launcher_lib.run_population(
        args, logdir, lambda i: pbt.member_logdir(logdir, i))
    if failed:
      raise SystemExit(1)
    return
  if args.collective_addresses and args.role != 'learner':
    raise SystemExit('error: --collective_addresses is for learner workers '
                     f'(role=learner), not role={args.role}.')
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
