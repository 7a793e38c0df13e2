"""history: who created the flow run, where the Prefect server knows it

Revision ID: e5b2d8a4c7f1
Revises: c41a7e2f9b63
Create Date: 2026-12-01 03:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "e5b2d8a4c7f1"
down_revision = "c41a7e2f9b63"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # a new nullable column: the existing rows keep their content, hence their hashes
    op.add_column("history", sa.Column("created_by", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("history") as batch:
        batch.drop_column("created_by")
