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
