"""history hash chain, notes apart, append-only triggers, case versions

Revision ID: 9a4e1c7d2b55
Revises: 7c2d9e4a1b30
Create Date: 2026-11-30 19:00:00
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "9a4e1c7d2b55"
down_revision = "7c2d9e4a1b30"
branch_labels = None
depends_on = None

_SQLITE_TRIGGERS = (
    "CREATE TRIGGER history_no_update BEFORE UPDATE ON history "
    "BEGIN SELECT RAISE(ABORT, 'the history is append-only: its rows are never changed'); END",
    "CREATE TRIGGER history_no_delete BEFORE DELETE ON history "
    "BEGIN SELECT RAISE(ABORT, 'the history is append-only: its rows are never deleted'); END",
)
_PG_TRIGGERS = (
    "CREATE FUNCTION conum_history_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN RAISE EXCEPTION 'the history is append-only: its rows are never changed or deleted'; END $$",
    "CREATE TRIGGER history_append_only BEFORE UPDATE OR DELETE ON history "
    "FOR EACH ROW EXECUTE FUNCTION conum_history_append_only()",
    "CREATE TRIGGER history_no_truncate BEFORE TRUNCATE ON history "
    "FOR EACH STATEMENT EXECUTE FUNCTION conum_history_append_only()",
)


def _chain_existing_rows() -> None:
    """Chain the rows written before this revision; move their free-text reasons to notes."""
    from states.audit import row_hash

    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            "SELECT id, case_id, event, from_state, to_state, actor, at, data, flow_run_id "
            "FROM history ORDER BY case_id, id"
        )
    ).all()
    last: dict[int, str] = {}
    for hid, case_id, event, src, dst, actor, at, data, run in rows:
        values: dict[str, Any] = json.loads(data) if isinstance(data, str) else dict(data or {})
        reason = values.pop("reason", None) if event in ("decline", "withdraw", "cancel") else None
        if reason is not None:
            bind.execute(
                sa.text("INSERT INTO history_note (history_id, case_id, key, text) VALUES (:h, :c, 'reason', :t)"),
                {"h": hid, "c": case_id, "t": str(reason)},
            )
        instant = at if isinstance(at, datetime) else datetime.fromisoformat(str(at))
        digest = row_hash(
            case_id=case_id,
            event=event,
            from_state=src,
            to_state=dst,
            actor=actor,
            at=instant,
            data=values,
            flow_run_id=run,
            prev_hash=last.get(case_id),
        )
        bind.execute(
            sa.text("UPDATE history SET data = :d, prev_hash = :p, hash = :h WHERE id = :i"),
            {"d": json.dumps(values, ensure_ascii=False), "p": last.get(case_id), "h": digest, "i": hid},
        )
        last[case_id] = digest
    for case_id, digest in last.items():
        bind.execute(sa.text("UPDATE recruitment_case SET history_hash = :h WHERE id = :i"), {"h": digest, "i": case_id})


def upgrade() -> None:
    op.create_table(
        "history_note",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("history_id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("text", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["recruitment_case.id"]),
        sa.ForeignKeyConstraint(["history_id"], ["history.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("history_id", "key", name="uq_history_note_key"),
    )
    op.create_index(op.f("ix_history_note_case_id"), "history_note", ["case_id"], unique=False)
    op.create_index(op.f("ix_history_note_history_id"), "history_note", ["history_id"], unique=False)
    with op.batch_alter_table("history", schema=None) as batch_op:
        batch_op.add_column(sa.Column("prev_hash", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column("hash", sqlmodel.sql.sqltypes.AutoString(), nullable=False, server_default=""))
    with op.batch_alter_table("recruitment_case", schema=None) as batch_op:
        batch_op.add_column(sa.Column("history_hash", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column("lifecycle_version", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column("policy_version", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    _chain_existing_rows()
    triggers = _SQLITE_TRIGGERS if op.get_bind().dialect.name == "sqlite" else _PG_TRIGGERS
    for statement in triggers:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS history_no_update")
        op.execute("DROP TRIGGER IF EXISTS history_no_delete")
    else:
        op.execute("DROP TRIGGER IF EXISTS history_append_only ON history")
        op.execute("DROP TRIGGER IF EXISTS history_no_truncate ON history")
        op.execute("DROP FUNCTION IF EXISTS conum_history_append_only()")
    with op.batch_alter_table("recruitment_case", schema=None) as batch_op:
        batch_op.drop_column("policy_version")
        batch_op.drop_column("lifecycle_version")
        batch_op.drop_column("history_hash")
    with op.batch_alter_table("history", schema=None) as batch_op:
        batch_op.drop_column("hash")
        batch_op.drop_column("prev_hash")
    op.drop_index(op.f("ix_history_note_history_id"), table_name="history_note")
    op.drop_index(op.f("ix_history_note_case_id"), table_name="history_note")
    op.drop_table("history_note")
