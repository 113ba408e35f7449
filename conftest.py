"""Every test session can get a real Kafka broker (started once, on free ports).

``make test`` runs the tests in parallel processes (pytest-xdist, ``--dist loadgroup``): the
tests that start the platform's processes (marked ``e2e``) are one group, run one after
another by one worker, first, while the other workers take everything else. So two stacks
never compete for the machine, and the unit and integration tests run beside them."""

import pytest

pytest_plugins = ["devstack.pytest_plugin"]

STACKS = "stacks"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("e2e") is not None:
            item.add_marker(pytest.mark.xdist_group(STACKS))
