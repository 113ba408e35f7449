"""Errors of the local broker tooling."""

from __future__ import annotations


class BrokerError(RuntimeError):
    """The broker could not be prepared, started or stopped; the message says why."""


class PortInUseError(BrokerError):
    """A port the broker needs is already taken by another process."""
