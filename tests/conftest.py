"""Fixtures shared by the test files."""

import csv
import importlib.util
import pathlib
import sys

import pytest

STANDIN_DIR = pathlib.Path(__file__).resolve().parent / 'deepmind_lab_standin'

# The project's reference facts (the paper's tables, human and random
# scores): ../shared/reference beside the repository, as CI lays it out.
REFERENCE_DIR = pathlib.Path(__file__).resolve().parents[2] / 'shared' / (
    'reference')


@pytest.fixture
def reference_table():
  """`read(filename)` -> rows (dicts) of a CSV in the reference directory.

  The tests that compare against the reference data skip, saying so, where
  the directory is not beside the checkout.
  """
  if not REFERENCE_DIR.is_dir():
    pytest.skip(f'the reference data ({REFERENCE_DIR}) is not beside this '
                'checkout')

  def read(filename):
    with open(REFERENCE_DIR / filename, newline='') as f:
      return list(csv.DictReader(f))
  return read


# Why a real-engine test skipped, and how to run it.
ENGINE_MISSING = (
    'DeepMind Lab is not installed in this Python: install the wheel in '
    '../shared/deepmind_lab (pip install ../shared/deepmind_lab/'
    'deepmind_lab-1.0-py3-none-any.whl dm-env, with the Debian runtime '
    'packages .ci/run lists; README, "DeepMind Lab")')


def import_engine():
  """The real `deepmind_lab` module; skips the test where it is absent."""
  try:
    import deepmind_lab  # pylint: disable=g-import-not-at-top
  except ImportError:
    pytest.skip(ENGINE_MISSING)
  if getattr(deepmind_lab, 'IS_STANDIN', False):
    pytest.fail('the stand-in deepmind_lab was left in sys.modules')
  return deepmind_lab


@pytest.fixture
def engine():
  """The real DeepMind Lab (skips the test where it is not installed)."""
  return import_engine()


@pytest.fixture(params=['standin', 'engine'])
def any_lab(request):
  """The stand-in, then the real engine: a test that takes this fixture is a
  conformance test both must pass (the real one skips where absent)."""
  if request.param == 'standin':
    return request.getfixturevalue('lab')
  return import_engine()


@pytest.fixture
def lab(monkeypatch):
  """A fresh stand-in `deepmind_lab` module (tests/deepmind_lab_standin).

  It is installed as sys.modules['deepmind_lab'], exactly where the
  adapter's lazy import looks, and its directory is put on sys.path so that
  spawned worker processes import it too. Removed again after the test.
  """
  spec = importlib.util.spec_from_file_location(
      'deepmind_lab', STANDIN_DIR / 'deepmind_lab.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  monkeypatch.setitem(sys.modules, 'deepmind_lab', module)
  monkeypatch.syspath_prepend(str(STANDIN_DIR))
  yield module
  for instance in module.INSTANCES:
    instance.close()
