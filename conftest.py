"""Every test session can get a real Kafka broker (started once, on free ports)."""

pytest_plugins = ["devstack.pytest_plugin"]
