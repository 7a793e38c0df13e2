"""The rows that are the truth of the programme.

A case's state can only change through the transition service; the version
column makes a lost race raise instead of overwriting (optimistic locking).
The history is append-only: the service only ever inserts into it, and the
database refuses UPDATE and DELETE on it (triggers); each case's rows form a
hash chain (``states.audit``).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, Column, Index, Integer, UniqueConstraint
from sqlalchemy.orm import configure_mappers
from sqlmodel import Field, SQLModel


class Structure(SQLModel, table=True):
    """A host structure (collectivité, library, association) with its attributed posts."""

    id: int | None = Field(default=None, primary_key=True)
    name: str
    kind: str = "public"  # public | private
    departement: str = Field(index=True)
    posts: int
    email: str | None = None


class Candidate(SQLModel, table=True):
    """A candidate of the national pool: job-related data only."""

    id: int | None = Field(default=None, primary_key=True)
    name: str
    email: str
    departement: str | None = None
    consent: bool = False  # agreed to be kept in the pool longer (policy.retention_consent_months)
    anonymised_at: datetime | None = None


class TrainingOrg(SQLModel, table=True):
    __tablename__ = "training_org"

    id: int | None = Field(default=None, primary_key=True)
    name: str
    email: str | None = None


_version = Column("version", Integer, nullable=False)


class Tracked:
    """A faster attribute set for the rows a transition changes column after column.

    A model's ``__setattr__`` (SQLModel's) records the change for SQLAlchemy, then sets the value again
    through pydantic; for a column the second only notes the field as set. This does both, once: the
    same change recorded (``committed_state``), the same value, the same fields set.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        impls = _IMPLS.get(self.__class__) or _impls(self.__class__)
        impl = impls.get(name)
        if impl is None:
            super().__setattr__(name, value)
            return
        state = self._sa_instance_state  # type: ignore[attr-defined]
        impl.set(state, state.dict, value, None)
        self.__pydantic_fields_set__.add(name)  # type: ignore[attr-defined]


_IMPLS: dict[type, dict[str, Any]] = {}


def _impls(model: type) -> dict[str, Any]:
    """The SQLAlchemy attribute of each column of ``model`` (once its mapping is configured)."""
    configure_mappers()
    manager = model._sa_class_manager  # type: ignore[attr-defined]
    found = _IMPLS[model] = {key: manager[key].impl for key in manager}
    return found


class Case(Tracked, SQLModel, table=True):
    """One recruitment: a candidate presented to a structure, up to the last tranche."""

    __tablename__ = "recruitment_case"
    __table_args__ = (Index("ix_case_due", "due_at"), Index("ix_case_state_structure", "state", "structure_id"))
    __mapper_args__: ClassVar[dict[str, Any]] = {"version_id_col": _version}

    id: int | None = Field(default=None, primary_key=True)
    structure_id: int = Field(foreign_key="structure.id", index=True)
    candidate_id: int = Field(foreign_key="candidate.id", index=True)
    state: str = Field(index=True)
    version: int = Field(default=1, sa_column=_version)
    escalation_level: int = 0
    # the deadline clock of the current state
    clock_start: datetime | None = None
    deadline_at: datetime | None = None
    due_step: int = 0
    due_at: datetime | None = None
    last_at: datetime  # instant of the last history entry: history only moves forward
    presented_at: datetime
    selected_at: datetime | None = None
    training_org_id: int | None = Field(default=None, foreign_key="training_org.id")
    contract_type: str | None = None
    contract_start: date | None = None
    contract_end: date | None = None
    salary_cents: int | None = None
    training_start: date | None = None
    in_post_on: date | None = None
    ended_on: date | None = None
    funded_months: int | None = None
    subsidy_cents: int | None = None
    recovery_cents: int = 0
    # the hash of the last history row (the end of the chain: a row removed at the end shows)
    history_hash: str | None = None
    # the versions of the lifecycle table and of the policy the case runs under (digests)
    lifecycle_version: str | None = None
    policy_version: str | None = None


class History(SQLModel, table=True):
    """An append-only record of what happened to a case, who did it and when."""

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="recruitment_case.id", index=True)
    event: str
    from_state: str | None = None
    to_state: str
    actor: str
    at: datetime
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    flow_run_id: str | None = None
    # who created that flow run, where the Prefect server knows it (a user, an automation): ``type:name``
    created_by: str | None = None
    # the hash chain of the case's history (states.audit): the previous row's hash, and this row's
    prev_hash: str | None = None
    hash: str = ""


class HistoryNote(SQLModel, table=True):
    """Free text a person typed with an event (a reason): personal data, kept out of the history rows.

    Privacy work may scrub ``text``; the history row and its hash chain stay as they were.
    """

    __tablename__ = "history_note"
    __table_args__ = (UniqueConstraint("history_id", "key", name="uq_history_note_key"),)

    id: int | None = Field(default=None, primary_key=True)
    history_id: int = Field(foreign_key="history.id", index=True)
    case_id: int = Field(foreign_key="recruitment_case.id", index=True)
    key: str
    text: str


class Tranche(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("case_id", "number", name="uq_tranche_case_number"),
        Index("ix_tranche_status_due", "status", "due_on"),
    )

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="recruitment_case.id", index=True)
    number: int
    amount_cents: int
    due_on: date | None = None  # tranche 1: set when the conseiller takes post
    status: str = "scheduled"  # scheduled | paid | cancelled
    paid_at: datetime | None = None


class Outbox(SQLModel, table=True):
    """A notification or payment order to send after commit, once."""

    __table_args__ = (Index("ix_outbox_status_next", "status", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: int | None = Field(default=None, foreign_key="recruitment_case.id", index=True)
    kind: str
    recipient: str  # structure | candidate | prefet | anct | training_org | payment
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: str = "pending"  # pending | sent | failed (gave up after the retries)
    attempts: int = 0
    last_error: str | None = None
    created_at: datetime
    next_attempt_at: datetime
    sent_at: datetime | None = None
