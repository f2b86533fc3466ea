"""The whole system, for real: processes, gRPC, checkpoints, learning.

These tests start `python -m scalable_agent.main` as separate OS processes
and read their console lines, as a user would.
"""

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from scalable_agent import launcher as launcher_lib
from scalable_agent import main as main_lib
from scalable_agent import transport

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINE = re.compile(r'\[learner\] step (\d+)  frames ([\d,]+) '
                  r'\(agent steps [\d,]+\)  fps ([\d,]+)  '
                  r'return ([-\d.na]+)')


# The console script `pip install` made, when there is one: what users run.
SCRIPT = os.path.join(os.path.dirname(sys.executable), 'scalable_agent')


def _command(*flags):
  if os.path.exists(SCRIPT):
    return [SCRIPT, *flags]
  return [sys.executable, '-m', 'scalable_agent.main', *flags]


def _start(*flags):
  env = dict(os.environ, PYTHONUNBUFFERED='1')
  return subprocess.Popen(_command(*flags), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, cwd=REPO,
                          env=env, start_new_session=True)


def _read_until(process, predicate, timeout_s, lines):
  """Reads lines into `lines` until predicate(line) or timeout/exit."""
  deadline = time.time() + timeout_s
  while time.time() < deadline:
    line = process.stdout.readline()
    if not line:
      if process.poll() is not None:
        return None
      continue
    lines.append(line)
    if predicate(line):
      return line
  return None


def _stop(*processes):
  for p in processes:
    if p.poll() is None:
      os.killpg(p.pid, signal.SIGKILL)
    p.wait(timeout=30)


def test_learns_cartpole_with_a_learner_and_two_actor_processes(tmp_path):
  # The learner and each actor are separate commands, joined by address:
  # the cluster wiring, on one machine. Random play averages ~22.
  port = transport.free_port()
  common = ['--level=CartPole-v1', f'--logdir={tmp_path}']
  learner = _start('--role=learner', f'--bind=localhost:{port}', *common,
                   '--total_environment_frames=200000', '--log_every_s=5')
  actors = [_start('--role=actor', f'--task={i}',
                   f'--learner_address=localhost:{port}', *common)
            for i in range(2)]
  lines = []
  returns = []
  try:
    def record(line):
      match = LINE.search(line)
      if match and match.group(4) != 'nan':
        returns.append((int(match.group(2).replace(',', '')),
                        float(match.group(4))))
      return False
    _read_until(learner, record, timeout_s=600, lines=lines)
    assert learner.wait(timeout=60) == 0, ''.join(lines[-30:])
    # Issue 10, defect 6: a normal finish is a normal finish for the actors
    # too (they used to retry for 300 s and exit 1, 'unreachable').
    for actor in actors:
      assert actor.wait(timeout=60) == 0
  finally:
    _stop(learner, *actors)
  assert returns, ''.join(lines[-30:])
  frames, final_return = returns[-1]
  assert frames >= 200000
  # Mean return over the last 100 episodes, well above random (~22).
  assert final_return > 100, returns
  # Both actors fed the learner.
  assert os.path.exists(os.path.join(tmp_path, 'checkpoints', 'checkpoint'))


def test_ctrl_c_checkpoints_and_a_rerun_resumes(tmp_path):
  flags = ['--level=CartPole-v1', f'--logdir={tmp_path}', '--num_actors=2',
           '--log_every_s=2']
  first = _start(*flags)
  lines = []
  try:
    line = _read_until(first, LINE.search, timeout_s=300, lines=lines)
    assert line, ''.join(lines[-30:])
    # As Ctrl-C in a terminal: SIGINT to the whole process group, the
    # learner and its actor processes.
    os.killpg(first.pid, signal.SIGINT)
    assert first.wait(timeout=120) == 0, ''.join(lines[-30:])
    lines += first.stdout.readlines()
  finally:
    _stop(first)
  assert any('SIGINT: checkpointing' in l for l in lines), ''.join(lines)
  # The actors stop quietly, without a traceback.
  assert not any('Traceback' in l for l in lines), ''.join(lines)
  with open(os.path.join(tmp_path, 'checkpoints', 'checkpoint')) as f:
    saved_step = int(re.search(r'ckpt-(\d+)', f.read()).group(1))
  assert saved_step > 0

  second = _start(*flags)
  lines = []
  try:
    line = _read_until(second, LINE.search, timeout_s=300, lines=lines)
    assert line, ''.join(lines[-30:])
  finally:
    _stop(second)
  assert any('resumed from' in l and f'ckpt-{saved_step}' in l
             for l in lines), ''.join(lines)
  # Steps continue from the checkpoint, not from zero.
  assert int(LINE.search(line).group(1)) > saved_step


def test_local_launcher_restarts_a_dead_actor(tmp_path):
  process = _start('--level=CartPole-v1', f'--logdir={tmp_path}',
                   '--num_actors=2', '--log_every_s=2')
  lines = []
  try:
    assert _read_until(process, LINE.search, timeout_s=300, lines=lines)
    actors = subprocess.run(
        ['pgrep', '-f', f'role=actor --task=0 .*logdir={tmp_path}'],
        capture_output=True, text=True).stdout.split()
    assert actors, 'actor 0 not found'
    os.kill(int(actors[0]), signal.SIGKILL)
    assert _read_until(process, lambda l: 'actor 0 exited' in l, 60, lines)
    # Training goes on with the restarted actor.
    assert _read_until(process, lambda l: '[actor 0]' in l, 120, lines)
    assert _read_until(process, LINE.search, 120, lines)
  finally:
    _stop(process)


def _stand_in_actors(monkeypatch, statuses, starts):
  """Actor processes that exit at once with statuses[task] (negative: killed
  by that signal); their start times go to starts[task]."""
  def command(self, task):
    del self
    starts.setdefault(task, []).append(time.monotonic())
    status = statuses[task]
    if status < 0:  # Death by signal -status.
      return [sys.executable, '-c',
              f'import os; os.kill(os.getpid(), {-status}); '
              'import time; time.sleep(10)']
    return [sys.executable, '-c', f'import sys; sys.exit({status})']
  monkeypatch.setattr(launcher_lib.ActorLauncher, '_command', command)


def test_local_launcher_restarts_deaths_but_not_finished_actors(monkeypatch):
  # Exit status 0 is how an actor ends when the learner closed its queue;
  # restarting it then would only start actors against a stopping learner.
  starts = {}
  _stand_in_actors(monkeypatch, {0: 0, 1: 3, 2: -signal.SIGTERM}, starts)
  launcher = launcher_lib.ActorLauncher(
      main_lib.parse_args(['--num_actors=3']), 'localhost:1', backoff_s=0.2,
      poll_s=0.05)
  launcher.start()
  try:
    deadline = time.monotonic() + 60
    while len(starts.get(1, [])) < 3 and time.monotonic() < deadline:
      time.sleep(0.05)
  finally:
    launcher.stop()
  assert len(starts[0]) == 1, 'a finished actor (status 0) was restarted'
  assert len(starts[1]) >= 3, 'a dead actor (status 3) was not restarted'
  assert len(starts[2]) == 1, 'an actor stopped by SIGTERM was restarted'


def test_local_launcher_backs_off_then_gives_up(monkeypatch):
  starts = {}
  _stand_in_actors(monkeypatch, {0: 3}, starts)
  gave_up = threading.Event()
  launcher = launcher_lib.ActorLauncher(
      main_lib.parse_args(['--num_actors=1']), 'localhost:1', backoff_s=0.2,
      max_fast_failures=4, poll_s=0.02, on_all_failed=gave_up.set)
  launcher.start()
  try:
    assert gave_up.wait(timeout=60), 'the launcher never gave up'
    time.sleep(0.5)  # Nothing more is started after giving up.
  finally:
    launcher.stop()
  # 4 deaths: the first start and 3 restarts, after delays that double
  # (0.2, 0.4, 0.8 s, plus process start-up and polling).
  assert len(starts[0]) == 4 and launcher.restarts == 3
  gaps = np.diff(starts[0])
  for gap, delay in zip(gaps, (0.2, 0.4, 0.8)):
    assert delay <= gap < delay + 2.0, gaps


def test_unknown_level_is_a_clear_error():
  result = subprocess.run(_command('--role=single_process', '--level=pongg'),
                          capture_output=True, text=True, cwd=REPO,
                          timeout=300)
  assert result.returncode != 0
  assert "Unknown level 'pongg'" in result.stderr
  assert 'pong' in result.stderr  # The suggestion.


def test_tf_config_sets_role_task_and_learner(monkeypatch):
  monkeypatch.setenv('TF_CONFIG', json.dumps({
      'cluster': {'learner': ['10.0.0.1:8470'], 'actor': ['a:1', 'b:1']},
      'task': {'type': 'actor', 'index': 1}}))
  args = main_lib.parse_args(['--level=pong'])
  main_lib.apply_tf_config(args)
  assert (args.role, args.task, args.learner_address) == (
      'actor', 1, '10.0.0.1:8470')
  for bad in ('{"cluster": {}}', '{"cluster": {"learner": ["h:1"]}}',
              '{not json'):
    monkeypatch.setenv('TF_CONFIG', bad)
    with pytest.raises(SystemExit, match='TF_CONFIG is not a valid'):
      main_lib.apply_tf_config(main_lib.parse_args(['--level=pong']))


def test_tf_config_cannot_override_an_explicit_role_or_name_unknown_types(
    monkeypatch):
  # Issue 10, defect 3: a TF_CONFIG task of another type made the local
  # launcher's children learners, each starting more.
  monkeypatch.setenv('TF_CONFIG', json.dumps({
      'cluster': {'learner': ['10.0.0.1:8470']},
      'task': {'type': 'learner', 'index': 0}}))
  args = main_lib.parse_args(['--role=actor', '--task=3'])
  main_lib.apply_tf_config(args)
  assert (args.role, args.task, args.learner_address) == (
      'actor', 3, 'localhost:8470')
  monkeypatch.setenv('TF_CONFIG', json.dumps({
      'cluster': {'learner': ['h:1'], 'worker': ['w:1']},
      'task': {'type': 'worker', 'index': 0}}))
  with pytest.raises(SystemExit, match="'worker'.*learner or actor"):
    main_lib.apply_tf_config(main_lib.parse_args([]))
  # Local children never see the parent's TF_CONFIG.
  assert 'TF_CONFIG' not in launcher_lib._child_environment()
  monkeypatch.delenv('TF_CONFIG')
  args = main_lib.parse_args([])
  main_lib.apply_tf_config(args)
  assert args.role == 'local'


@pytest.mark.parametrize('flag', [
    '--unroll_length=0', '--batch_size=-1', '--num_actors=0',
    '--envs_per_actor=0', '--total_environment_frames=0',
    '--learning_rate=-1e-3', '--discounting=1.5', '--task=-1',
    # Issue 24, defect 1: inf passed the > 0 check and made every
    # parameter NaN at the first update.
    '--learning_rate=inf', '--entropy_cost=nan', '--max_gradient_norm=inf',
    '--stop_at_frames=inf', '--replay_fraction=nan'])
def test_flags_that_would_hang_or_crash_later_are_refused_at_once(flag,
                                                                  capsys):
  # Issue 10, defect 8: --unroll_length=0 trained for ever at 0 frames.
  with pytest.raises(SystemExit) as exit_info:
    main_lib.parse_args([flag])
  assert exit_info.value.code == 2
  name = flag.split('=')[0]
  assert f'{name} must be' in capsys.readouterr().err


def test_actor_without_a_learner_fails_with_a_clear_error(tmp_path):
  port = transport.free_port()
  result = subprocess.run(
      _command('--role=actor', '--level=CartPole-v1',
               f'--learner_address=localhost:{port}',
               '--connect_timeout_s=3'),
      capture_output=True, text=True, cwd=REPO, timeout=300)
  assert result.returncode != 0
  assert f'localhost:{port}' in result.stderr
  assert '--learner_address' in result.stderr


def test_hparams_flag_picks_the_set_and_flags_override_it():
  from scalable_agent import learner as learner_lib  # pylint: disable=g-import-not-at-top
  from scalable_agent import suites  # pylint: disable=g-import-not-at-top
  config = suites.resolve('pong')
  paper = main_lib.hyperparameters(
      main_lib.parse_args(['--hparams=paper']), config)
  assert paper == learner_lib.PAPER_ATARI
  assert (paper.batch_size, paper.unroll_length, paper.learning_rate,
          paper.epsilon, paper.max_gradient_norm, paper.entropy_cost) == (
              32, 20, 0.0006, 0.01, 40., 0.01)  # Table G.1.
  default = main_lib.hyperparameters(main_lib.parse_args([]), config)
  assert default == learner_lib.ATARI_DEFAULTS
  # The documented differences (BUILD_NOTES.md, "Atari defaults").
  assert default == dataclasses.replace(paper, batch_size=4, epsilon=1e-5,
                                        replay_capacity=1000,
                                        replay_fraction=0.5)
  assert (default.num_fresh, default.num_replayed) == (2, 2)
  # Replay off from the command line.
  assert main_lib.hyperparameters(
      main_lib.parse_args(['--replay_capacity=0']), config).num_replayed == 0
  # Multi-task Atari keeps the paper's batch.
  assert main_lib.hyperparameters(main_lib.parse_args([]),
                                  suites.resolve('atari57')) == paper
  tuned = main_lib.hyperparameters(
      main_lib.parse_args(['--hparams=paper', '--batch_size=4',
                           '--max_gradient_norm=0']), config)
  assert tuned == dataclasses.replace(learner_lib.PAPER_ATARI, batch_size=4,
                                      max_gradient_norm=0.)


_ORPHAN_SCRIPT = '''
import sys, time
from scalable_agent import launcher, main
launcher.ActorLauncher._command = lambda self, task: [
    sys.executable, '-c', 'import time; time.sleep(120)']
started = launcher.ActorLauncher(main.parse_args(['--num_actors=2']), 'x:1')
started.start()
print(' '.join(str(p.pid) for p in started._processes.values()), flush=True)
time.sleep(120)
'''


def test_actors_die_with_a_killed_launcher():
  # Issue 10, defect 7: a learner killed with SIGKILL left its actors
  # running.
  parent = subprocess.Popen([sys.executable, '-c', _ORPHAN_SCRIPT],
                            stdout=subprocess.PIPE, text=True, cwd=REPO)
  try:
    pids = [int(p) for p in parent.stdout.readline().split()]
    assert len(pids) == 2
    parent.kill()
    parent.wait(timeout=30)
    deadline = time.monotonic() + 20
    alive = pids
    while alive and time.monotonic() < deadline:
      time.sleep(0.1)
      alive = [pid for pid in pids if _running(pid)]
    assert not alive, f'actors {alive} outlived their launcher'
  finally:
    parent.kill()


def _running(pid):
  try:
    with open(f'/proc/{pid}/stat') as f:
      return f.read().split(')')[-1].split()[0] != 'Z'  # Zombies are dead.
  except FileNotFoundError:
    return False


def test_a_logdir_refuses_to_resume_another_level_or_torso(tmp_path, caplog):
  # Issue 10, defect 5: a Pong checkpoint resumed as Space Invaders (same
  # action count and observation shape).
  def identity(level, torso, lr=6e-4):
    return {'level': level, 'levels': [level], 'suite': 'atari57',
            'torso': torso, 'hparams': {'learning_rate': lr}}
  logdir = str(tmp_path / 'run')
  main_lib.check_run_identity(logdir, identity('pong', 'shallow'))
  main_lib.check_run_identity(logdir, identity('pong', 'shallow'))
  with pytest.raises(SystemExit, match="levels \\['pong'\\].*space_invaders"):
    main_lib.check_run_identity(logdir, identity('space_invaders', 'shallow'))
  with pytest.raises(SystemExit, match="torso 'shallow'.*'deep'"):
    main_lib.check_run_identity(logdir, identity('pong', 'deep'))
  with caplog.at_level('WARNING', logger='learner'):
    main_lib.check_run_identity(logdir, identity('pong', 'shallow', lr=1e-3))
  assert 'learning_rate 0.0006 -> 0.001' in caplog.text
