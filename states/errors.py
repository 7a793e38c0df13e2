"""Errors that reach an operator: each says which rule refused and what to do."""

from __future__ import annotations


class ConumError(Exception):
    """Base of every refusal; the message is meant for the operator."""

    rule = "error"

    def __init__(self, message: str, rule: str | None = None) -> None:
        super().__init__(message)
        if rule:
            self.rule = rule


class RuleViolation(ConumError):
    """A programme rule refuses the action."""

    rule = "rule"


class IllegalEvent(ConumError):
    rule = "lifecycle"


def illegal_event(
    what: str, state: str, event: str, known: bool, internal: bool, allowed: list[str], fired_by: str
) -> IllegalEvent:
    """Return the refusal of an event the table does not allow from ``state``, naming those it allows.

    ``what`` names the row ("case 3"), ``fired_by`` who fires the internal events ("the sweep").
    """
    why = "unknown event" if not known else f"an event {fired_by} fires itself" if internal else "not allowed from it"
    return IllegalEvent(
        f"{what} is in state '{state}'; '{event}' is {why} (rule: lifecycle). "
        f"Events allowed from {state}: {', '.join(allowed) or f'none (the {what.split()[0]} is closed)'}"
    )


class NotAllowed(ConumError):
    """The actor may not do this."""

    rule = "permission"


class NotFound(ConumError):
    rule = "not_found"


class Conflict(ConumError):
    """Someone else changed the case first; read it again and retry."""

    rule = "conflict"


class BadInput(ConumError):
    rule = "input"


class PolicyError(ConumError):
    rule = "policy"


class Held(ConumError):
    """A batch run left due cases undone: another transaction held them for longer than the run waits."""

    rule = "held"
