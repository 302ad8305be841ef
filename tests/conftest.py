"""Test configuration: hypothesis profiles, one torch thread per worker.

Two hypothesis profiles:

- ``dev`` (the default): derandomised, 25 examples. The same examples on every run, fast, for
  local work on a shared 2-core machine.
- ``ci`` (selected when the environment variable ``CI`` is set, as CI services do, or with
  ``--hypothesis-profile=ci``): random, 100 examples, so that every run explores new cases. A
  failure prints its falsifying example, the ``@reproduce_failure`` blob and the seed to rerun
  it with (``pytest --hypothesis-seed=N``); failures are kept in an in-memory database for the
  rest of the run, so a flaky one is replayed first by the next test that shares its key.

Tests that set ``max_examples`` themselves (costly properties) keep their count in both.
"""

import os

import pytest
import torch
from hypothesis import HealthCheck, Verbosity, settings
from hypothesis.database import InMemoryExampleDatabase

_COMMON = dict(
    deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
settings.register_profile("dev", derandomize=True, max_examples=25, database=None, **_COMMON)
settings.register_profile(
    "ci",
    derandomize=False,
    max_examples=100,
    print_blob=True,
    database=InMemoryExampleDatabase(),
    verbosity=Verbosity.normal,
    **_COMMON,
)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
torch.set_num_threads(1)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failed hypothesis test with a random seed, say which seed reruns it."""
    outcome = yield
    report = outcome.get_result()
    seed = getattr(getattr(item, "obj", None), "_hypothesis_internal_use_generated_seed", None)
    if report.when == "call" and report.failed and seed is not None:
        report.sections.append(
            ("hypothesis seed", f"rerun with: pytest --hypothesis-seed={seed} '{item.nodeid}'")
        )
