"""routing_case.sequence: the referral's sequence as far as routing has seen it

Revision ID: 5c2e8a41d7b9
Revises: 043b4be91653
Create Date: 2026-12-03 13:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "5c2e8a41d7b9"
down_revision: str | Sequence[str] | None = "043b4be91653"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Null for cases opened before: routing learns the sequence from their next event.
    with op.batch_alter_table("routing_case", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sequence", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("routing_case", schema=None) as batch_op:
        batch_op.drop_column("sequence")
