"""deploy/kubernetes: the manifests agree with each other and with what
`scalable_agent` makes of them (issue 13).

Each pod's TF_CONFIG is expanded as Kubernetes would (the Indexed Job's
completion index for $(TASK_INDEX)) and given to the program's own
`apply_tf_config`, with the container's arguments.
"""

import json
import os
import re

import pytest
import yaml

from scalable_agent import main as main_lib
from scalable_agent import suites

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MANIFEST = os.path.join(REPO, 'deploy', 'kubernetes', 'impala.yaml')


def _documents():
  with open(MANIFEST) as f:
    return {(d['kind'], d['metadata']['name']): d
            for d in yaml.safe_load_all(f)}


def _container(job):
  (container,) = job['spec']['template']['spec']['containers']
  return container


def _pod_args(job, index, monkeypatch):
  """The program's parsed flags in pod `index` of an Indexed Job."""
  container = _container(job)
  assert container['command'] == ['scalable_agent']
  env = {e['name']: e for e in container['env']}
  annotation = env['TASK_INDEX']['valueFrom']['fieldRef']['fieldPath']
  assert annotation == ("metadata.annotations['batch.kubernetes.io/"
                        "job-completion-index']")
  # Kubernetes expands $(NAME) of variables defined earlier in the list.
  names = [e['name'] for e in container['env']]
  assert names.index('TASK_INDEX') < names.index('TF_CONFIG')
  tf_config = env['TF_CONFIG']['value'].replace('$(TASK_INDEX)', str(index))
  assert '$(' not in tf_config
  monkeypatch.setenv('TF_CONFIG', tf_config)
  args = main_lib.parse_args(container['args'])
  main_lib.apply_tf_config(args)
  return args, json.loads(tf_config)


def test_the_manifests_cluster_spec_matches_the_jobs_and_the_program(
    monkeypatch):
  documents = _documents()
  service = documents[('Service', 'learner')]
  learner_job = documents[('Job', 'learner')]
  actor_job = documents[('Job', 'actor')]
  for job in (learner_job, actor_job):
    spec = job['spec']
    assert spec['completionMode'] == 'Indexed'
    assert spec['parallelism'] == spec['completions']  # All run at once.
  num_learners = learner_job['spec']['completions']
  num_actors = actor_job['spec']['completions']
  assert num_learners == 2 and num_actors >= num_learners

  # The headless Service gives pod i of Job `learner` the DNS name
  # learner-<i>.learner, and exposes the ports that name is used with.
  assert service['spec']['clusterIP'] == 'None'
  assert service['spec']['selector'] == {'job-name': 'learner'}
  assert learner_job['spec']['template']['spec']['subdomain'] == (
      service['metadata']['name'])
  service_ports = {p['port'] for p in service['spec']['ports']}
  container_ports = {p['containerPort']
                     for p in _container(learner_job)['ports']}

  def pod_address(i, port):
    return f'learner-{i}.{service["metadata"]["name"]}:{port}'

  learner_args = []
  for i in range(num_learners):
    args, tf_config = _pod_args(learner_job, i, monkeypatch)
    learner_args.append(args)
    assert (args.role, args.task) == ('learner', i)
    cluster = tf_config['cluster']
    assert len(cluster['learner']) == len(
        cluster['learner_collective']) == num_learners
    collective = args.collective_addresses.split(',')
    assert collective == cluster['learner_collective']
    for j in range(num_learners):
      port = int(cluster['learner'][j].rpartition(':')[2])
      collective_port = int(collective[j].rpartition(':')[2])
      assert cluster['learner'][j] == pod_address(j, port)
      assert collective[j] == pod_address(j, collective_port)
      assert {port, collective_port} <= service_ports & container_ports
      assert port != collective_port
    # It listens on all interfaces, on the port its peers and actors use.
    assert args.bind == f'0.0.0.0:{cluster["learner"][i].rpartition(":")[2]}'
  # Every worker holds the same list; the global batch divides among them.
  assert len({a.collective_addresses for a in learner_args}) == 1
  hparams = main_lib.hyperparameters(
      learner_args[0], suites.resolve(learner_args[0].level))
  assert hparams.batch_size % num_learners == 0

  for i in range(num_actors):
    args, tf_config = _pod_args(actor_job, i, monkeypatch)
    assert (args.role, args.task) == ('actor', i)
    # Actor i joins learner worker i mod the number of workers, on the
    # address that worker serves.
    assert args.learner_address == learner_args[i % num_learners].bind.replace(
        '0.0.0.0', f'learner-{i % num_learners}.learner')
    # Actors must play what their learner trains.
    for flag in ('level', 'torso', 'unroll_length'):
      assert getattr(args, flag) == getattr(learner_args[0], flag), flag


@pytest.mark.parametrize('tf_config, message', [
    ({'cluster': {'learner': ['a:1', 'b:1']},
      'task': {'type': 'learner', 'index': 0}}, 'no "learner_collective"'),
    ({'cluster': {'learner': ['a:1', 'b:1'], 'learner_collective': ['a:2']},
      'task': {'type': 'learner', 'index': 0}}, '2 learner and 1'),
    ({'cluster': {'learner': ['a:1', 'b:1'],
                  'learner_collective': ['a:2', 'b:2']},
      'task': {'type': 'learner', 'index': 2}}, 'past the 2 learner'),
])
def test_a_tf_config_that_does_not_fit_two_learners_is_a_clear_error(
    monkeypatch, tf_config, message):
  monkeypatch.setenv('TF_CONFIG', json.dumps(tf_config))
  args = main_lib.parse_args([])
  with pytest.raises(SystemExit, match=re.escape(message)):
    main_lib.apply_tf_config(args)
