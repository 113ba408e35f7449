"""The base of every event payload, whatever it is about."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict


class Payload(BaseModel):
    """Base of every event payload. Unknown fields are ignored when reading, so producers may
    add optional fields without breaking older consumers.

    Each payload names its Kafka key (and CloudEvents ``subject``) with :attr:`key`: the
    referral id for referral events, so one referral's events stay in order on one partition;
    something else for events that are not about a referral."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    EVENT_TYPE: ClassVar[str]
    """CloudEvents ``type`` of this payload: ``rx.<owner>.<Name>.v<N>``."""

    @property
    def key(self) -> str:
        """Kafka key and CloudEvents subject of the event carrying this payload."""
        raise NotImplementedError(f"{type(self).__name__} does not say what its Kafka key is")
