"""structures' applications: the application row and its append-only, hash-chained history

Revision ID: c41a7e2f9b63
Revises: 9a4e1c7d2b55
Create Date: 2026-12-01 00:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "c41a7e2f9b63"
down_revision = "9a4e1c7d2b55"
branch_labels = None
depends_on = None

_SQLITE_TRIGGERS = (
    "CREATE TRIGGER application_history_no_update BEFORE UPDATE ON application_history "
    "BEGIN SELECT RAISE(ABORT, 'the history is append-only: its rows are never changed'); END",
    "CREATE TRIGGER application_history_no_delete BEFORE DELETE ON application_history "
    "BEGIN SELECT RAISE(ABORT, 'the history is append-only: its rows are never deleted'); END",
)
_PG_TRIGGERS = (
    "CREATE TRIGGER application_history_append_only BEFORE UPDATE OR DELETE ON application_history "
    "FOR EACH ROW EXECUTE FUNCTION conum_history_append_only()",
    "CREATE TRIGGER application_history_no_truncate BEFORE TRUNCATE ON application_history "
    "FOR EACH STATEMENT EXECUTE FUNCTION conum_history_append_only()",
)


def upgrade() -> None:
    op.create_table(
        "application",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("structure_id", sa.Integer(), sa.ForeignKey("structure.id"), nullable=False),
        sa.Column("siret", sa.String(), nullable=True),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("departement", sa.String(), nullable=False),
        sa.Column("posts_requested", sa.Integer(), nullable=False),
        sa.Column("posts_validated", sa.Integer(), nullable=False),
        sa.Column("duration_months", sa.Integer(), nullable=True),
        sa.Column("change_posts", sa.Integer(), nullable=True),
        sa.Column("committee", sa.String(), nullable=True),
        sa.Column("committee_on", sa.Date(), nullable=True),
        sa.Column("opinion", sa.String(), nullable=True),
        sa.Column("convention_start", sa.Date(), nullable=True),
        sa.Column("convention_end", sa.Date(), nullable=True),
        sa.Column("escalation_level", sa.Integer(), nullable=False),
        sa.Column("clock_start", sa.DateTime(), nullable=True),
        sa.Column("deadline_at", sa.DateTime(), nullable=True),
        sa.Column("due_step", sa.Integer(), nullable=False),
        sa.Column("due_at", sa.DateTime(), nullable=True),
        sa.Column("submitted_at", sa.DateTime(), nullable=False),
        sa.Column("last_at", sa.DateTime(), nullable=False),
        sa.Column("history_hash", sa.String(), nullable=True),
    )
    op.create_index("ix_application_structure_id", "application", ["structure_id"], unique=True)
    op.create_index("ix_application_siret", "application", ["siret"], unique=True)
    op.create_index("ix_application_state", "application", ["state"])
    op.create_index("ix_application_departement", "application", ["departement"])
    op.create_index("ix_application_due", "application", ["due_at"])
    op.create_table(
        "application_history",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("application_id", sa.Integer(), sa.ForeignKey("application.id"), nullable=False),
        sa.Column("event", sa.String(), nullable=False),
        sa.Column("from_state", sa.String(), nullable=True),
        sa.Column("to_state", sa.String(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("flow_run_id", sa.String(), nullable=True),
        sa.Column("prev_hash", sa.String(), nullable=True),
        sa.Column("hash", sa.String(), nullable=False),
    )
    op.create_index("ix_application_history_application_id", "application_history", ["application_id"])
    for statement in _SQLITE_TRIGGERS if op.get_bind().dialect.name == "sqlite" else _PG_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    op.drop_table("application_history")
    op.drop_table("application")
