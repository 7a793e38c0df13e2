"""The rows of the applications: one per structure, and its append-only, hash-chained history."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, Column, Index, Integer
from sqlmodel import Field, SQLModel

from states.models import Tracked

_version = Column("version", Integer, nullable=False)


class Application(Tracked, SQLModel, table=True):
    """A structure's application for posts, from its submission to its convention and later changes."""

    __table_args__ = (Index("ix_application_due", "due_at"),)
    __mapper_args__: ClassVar[dict[str, Any]] = {"version_id_col": _version}

    id: int | None = Field(default=None, primary_key=True)
    structure_id: int = Field(foreign_key="structure.id", index=True, unique=True)
    siret: str | None = Field(default=None, unique=True, index=True)  # None: imported, validated outside Conum
    state: str = Field(index=True)
    version: int = Field(default=1, sa_column=_version)
    departement: str = Field(index=True)
    posts_requested: int
    posts_validated: int = 0
    duration_months: int | None = None
    # a pending request for more posts (positive) or to give some back (negative)
    change_posts: int | None = None
    committee: str | None = None
    committee_on: date | None = None
    opinion: str | None = None
    convention_start: date | None = None
    convention_end: date | None = None
    escalation_level: int = 0
    clock_start: datetime | None = None
    deadline_at: datetime | None = None
    due_step: int = 0
    due_at: datetime | None = None
    submitted_at: datetime
    last_at: datetime
    history_hash: str | None = None


class ApplicationHistory(SQLModel, table=True):
    """An append-only record of what happened to an application (a hash chain, as a case's history)."""

    __tablename__ = "application_history"

    id: int | None = Field(default=None, primary_key=True)
    application_id: int = Field(foreign_key="application.id", index=True)
    event: str
    from_state: str | None = None
    to_state: str
    actor: str
    at: datetime
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    flow_run_id: str | None = None
    prev_hash: str | None = None
    hash: str = ""
