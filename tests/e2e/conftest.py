"""Whole-pipeline tests: a longer time limit than the suite's default.

A module's first test also pays for the pipeline runs of its module-scoped fixtures
(several runs of a few minutes each on two busy cores).
"""
import pathlib

import pytest

E2E_TIMEOUT_SECONDS = 1800
HERE = pathlib.Path(__file__).parent


def pytest_collection_modifyitems(items):
    for item in items:
        if HERE in pathlib.Path(item.fspath).parents and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(E2E_TIMEOUT_SECONDS))
