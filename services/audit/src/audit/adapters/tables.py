"""The audit service's tables: an append-only, hash-chained log of every event.

Each entry's hash covers the previous entry's hash and every recorded field, so an edited,
deleted, inserted or reordered entry breaks the chain from that entry on (see
``domain/chain.py``). Times are integer microseconds since the Unix epoch (UTC)."""

from __future__ import annotations

from typing import cast

from rx_messaging.tables import InboxMessage, OutboxMessage, tables_of
from sqlalchemy import BigInteger, Column, Index, Integer, Table, Text
from sqlmodel import Field, SQLModel

SEQUENCE = BigInteger().with_variant(Integer(), "sqlite")


class AuditEntry(SQLModel, table=True):
    """One event as recorded: where it came from, what it was, and its place in the chain."""

    __tablename__ = "audit_entry"

    # INTEGER on SQLite, so the sequence is the rowid itself rather than a second index.
    sequence: int = Field(sa_column=Column(SEQUENCE, primary_key=True, autoincrement=False))
    event_id: str = Field(unique=True, max_length=64)
    topic: str = Field(max_length=249)
    partition: int
    offset: int = Field(sa_column=Column(BigInteger, nullable=False))
    type: str = Field(index=True, max_length=200)
    referral_id: str | None = Field(default=None, index=True, max_length=200)
    actor_org: str | None = Field(default=None, max_length=64)
    occurred_at_us: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))
    recorded_at_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    payload: str = Field(sa_column=Column(Text, nullable=False))
    """The event's data as canonical JSON (sorted keys, no spaces): the digest is over it."""
    payload_digest: str = Field(max_length=64)
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class EntryOrganisation(SQLModel, table=True):
    """Which organisations an entry that is about no referral concerns (its actor and the
    organisations it names), for the organisation filter. Entries about a referral are found
    through :class:`ReferralOrganisation` instead. (Databases from before that read model also
    hold rows here for entries about a referral; they are harmless.)"""

    __tablename__ = "audit_entry_org"
    __table_args__ = (Index("ix_audit_entry_org_sequence", "sequence"),)

    organisation: str = Field(primary_key=True, max_length=64)
    sequence: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))


class ReferralOrganisation(SQLModel, table=True):
    """The read model behind the organisation filter: every organisation a referral involves,
    i.e. named by any of its events (its referrer, every organisation it was routed to, whoever
    acted on it). Kept in the transaction that appends each event, so the filter can give all
    the events of every referral an organisation sent or holds or held, whichever of them name
    it. Keyed organisation first: the filter looks up an organisation's referrals."""

    __tablename__ = "audit_referral_org"
    __table_args__ = {"sqlite_with_rowid": False}

    organisation: str = Field(primary_key=True, max_length=64)
    referral_id: str = Field(primary_key=True, max_length=200)


class ChainHead(SQLModel, table=True):
    """One row: the chain's id and its newest entry. Appends update it, which serialises them
    (PostgreSQL: the row is locked for the consumer's transaction), so the chain stays linear
    even with several consumer processes."""

    __tablename__ = "audit_chain_head"

    id: int = Field(default=1, primary_key=True)
    chain_id: str = Field(max_length=64)
    """Random id made with the first entry; the genesis hash derives from it, and checkpoints
    carry it, so they can be told apart from another audit database's on the same topic."""
    sequence: int = Field(sa_column=Column(BigInteger, nullable=False))
    hash: str = Field(max_length=64)
    event_sequence: int = Field(sa_column=Column(BigInteger, nullable=False))
    """The newest entry that is not itself a checkpoint: only those make a new checkpoint due,
    so checkpoints never feed themselves."""
    checkpoint_sequence: int = Field(sa_column=Column(BigInteger, nullable=False))
    """The sequence the last staged checkpoint covered."""


def table(model: type[SQLModel]) -> Table:
    """The Core table of ``model`` (hot paths use Core: no ORM bookkeeping per event)."""
    return cast(Table, model.__table__)  # type: ignore[attr-defined]


ENTRY = table(AuditEntry)
ENTRY_ORG = table(EntryOrganisation)
REFERRAL_ORG = table(ReferralOrganisation)
HEAD = table(ChainHead)

TABLES = tables_of(
    AuditEntry, EntryOrganisation, ReferralOrganisation, ChainHead, InboxMessage, OutboxMessage
)
