"""The test suite itself: `make test` runs it in parallel processes (pytest-xdist), which hand
out tests by their ids and keep the stack-starting tests (marked ``e2e``) in one group, run
one after another by one process. Two tests with the same id would run as one, silently; a
stack test outside the group would start its stack beside another."""

from __future__ import annotations

from collections import Counter

import pytest

from conftest import STACKS


def test_every_collected_test_has_its_own_id(request: pytest.FixtureRequest) -> None:
    counts = Counter(item.nodeid for item in request.session.items)
    repeated = sorted(nodeid for nodeid, n in counts.items() if n > 1)
    assert not repeated, (
        f"tests sharing an id (all but one would be skipped in parallel runs): {repeated}"
    )


def test_the_stack_tests_are_one_group(request: pytest.FixtureRequest) -> None:
    stack_tests = [item for item in request.session.items if item.get_closest_marker("e2e")]
    for item in stack_tests:
        groups = [mark.args[0] for mark in item.iter_markers("xdist_group")]
        assert groups == [STACKS], f"{item.nodeid} is in groups {groups}"
        if getattr(request.config.option, "loadgroup", False):
            # what the parallel run's scheduler reads: the group in the id
            assert item.nodeid.endswith(f"@{STACKS}"), item.nodeid
