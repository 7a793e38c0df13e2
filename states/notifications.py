"""Who hears of each event, with which mail: the notification matrix, as data.

Each row says: when this event of the lifecycle table happens (and this condition holds, by name), this
recipient is sent the mail of this kind (``templates/mail/<kind>.j2``). The effects of an event
(``states.effects.announce``) put exactly these rows in the outbox, in the transition's transaction; the
delivery renders them (``states.outbox``). ``docs/notifications.md`` is generated from this table
(``markdown``), and a test keeps it identical, checks that every row has a template that renders for its
recipient and that every template is used.

The applications of structures have their own table (``APPLICATION_MATRIX``), which their service follows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from states.lifecycle import EVENTS, OPENING
from states.rules import Context

#: Who may be told, and how each reads in the documentation.
RECIPIENTS: dict[str, str] = {
    "structure": "the host structure",
    "candidate": "the candidate (conseiller)",
    "training_org": "the training organisation",
    "prefet": "the préfet of the structure's département",
    "anct": "the ANCT (programme team)",
    "payment": "the payment service (a payment order file)",
}


@dataclass(frozen=True)
class Notice:
    """One cell of the matrix: on ``event``, when ``when`` holds, ``recipient`` is sent a ``kind`` mail."""

    event: str
    recipient: str
    kind: str
    when: str = "always"


#: The conditions a row may name: what each means, and how it is read from the event's context.
CONDITIONS: dict[str, tuple[str, Callable[[Context], bool]]] = {
    "always": ("every time", lambda ctx: True),
    "by_person": ("the candidate (or an operator for them) withdraws", lambda ctx: ctx.actor != "system"),
    "by_system": (
        "the candidate signed a contract in another case, which closes this one",
        lambda ctx: ctx.actor == "system",
    ),
    "before_contract": ("no contract was signed yet", lambda ctx: ctx.case.contract_start is None),
    "after_contract": ("a contract was signed: it ends", lambda ctx: ctx.case.contract_start is not None),
    "recovery_due": ("more was paid than earned: money to pay back", lambda ctx: bool(ctx.case.recovery_cents)),
    "level_2": ("escalation to the préfet (level 2)", lambda ctx: int(ctx.data.get("level", 0)) < 3),
    "level_3": ("escalation to the ANCT (level 3)", lambda ctx: int(ctx.data.get("level", 0)) >= 3),
}

_ = Notice
MATRIX: tuple[Notice, ...] = (
    _("present", "structure", "candidate_presented"),
    _("present", "candidate", "candidate_presented"),
    _("select", "candidate", "selected"),
    _("select", "structure", "selected"),
    _("decline", "candidate", "declined"),
    _("decline", "structure", "declined"),
    _("withdraw", "structure", "withdrawn", "by_person"),
    _("withdraw", "candidate", "withdrawn", "by_person"),
    _("withdraw", "structure", "signed_elsewhere", "by_system"),
    _("sign_contract", "structure", "contract_signed"),
    _("sign_contract", "candidate", "contract_signed"),
    _("start_training", "candidate", "training_convocation"),
    _("start_training", "training_org", "training_convocation"),
    _("start_training", "structure", "training_started"),
    _("complete_training", "structure", "in_post"),
    _("complete_training", "candidate", "in_post"),
    _("break_contract", "structure", "rupture"),
    _("break_contract", "candidate", "rupture"),
    _("break_contract", "structure", "recovery_order", "recovery_due"),
    _("cancel", "structure", "cancelled", "before_contract"),
    _("cancel", "candidate", "cancelled", "before_contract"),
    _("cancel", "structure", "rupture", "after_contract"),
    _("cancel", "candidate", "rupture", "after_contract"),
    _("cancel", "structure", "recovery_order", "recovery_due"),
    _("time_out", "structure", "time_out"),
    _("time_out", "candidate", "time_out"),
    _("time_out", "prefet", "time_out"),
    _("remind", "structure", "reminder"),
    _("escalate", "prefet", "escalation_prefet", "level_2"),
    _("escalate", "anct", "escalation_anct", "level_3"),
    _("pay_tranche", "structure", "tranche_paid"),
    _("pay_tranche", "payment", "payment_order"),
    _("pay_final_tranche", "structure", "final_tranche_paid"),
    _("pay_final_tranche", "payment", "payment_order"),
)

#: Events that tell no one, and why (every event of the table is either in the matrix or here).
SILENT: dict[str, str] = {
    "contact_training_org": "the structure writes to the organisation itself; the candidate hears at the contract",
}

#: The notifications about a structure's application (``states.applications.service``), same columns.
APPLICATION_MATRIX: tuple[Notice, ...] = (
    _("submit", "prefet", "application_submitted"),
    _("request_change", "prefet", "application_submitted"),
    _("give_opinion", "anct", "application_opinion"),
    _("validate", "structure", "application_validated"),
    _("refuse", "structure", "application_refused"),
    _("remind", "prefet", "application_reminder", "opinion_awaited"),
    _("remind", "anct", "application_reminder", "decision_awaited"),
    _("escalate", "anct", "application_escalation"),
)
APPLICATION_CONDITIONS: dict[str, str] = {
    "always": "every time",
    "opinion_awaited": "the préfet's opinion is awaited",
    "decision_awaited": "the committee's decision is awaited",
}
del _

#: Kinds that are not mails: written as files by the delivery (``states.outbox.payment``).
FILE_KINDS = frozenset({"payment_order"})


def _grouped() -> dict[str, tuple[tuple[str, str, tuple[str, ...]], ...]]:
    """The matrix by event: (condition, kind, recipients), in table order, one entry per condition and kind."""
    out: dict[str, list[tuple[str, str, list[str]]]] = {}
    for n in MATRIX:
        entries = out.setdefault(n.event, [])
        for when, kind, recipients in entries:
            if (when, kind) == (n.when, n.kind):
                recipients.append(n.recipient)
                break
        else:
            entries.append((n.when, n.kind, [n.recipient]))
    return {e: tuple((w, k, tuple(r)) for w, k, r in entries) for e, entries in out.items()}


BY_EVENT = _grouped()


def notices(ctx: Context) -> list[tuple[str, tuple[str, ...]]]:
    """Return what the event of ``ctx`` sends: (kind, recipients) for each matrix entry whose condition holds."""
    entries = BY_EVENT.get(ctx.event.name, ())
    return [(kind, recipients) for when, kind, recipients in entries if CONDITIONS[when][1](ctx)]


def told(event: str) -> list[str]:
    """Who hears of ``event``, as ``conum events`` shows it: ``recipient: template`` and the condition, if any."""
    return [
        f"{n.recipient}: {n.kind}" + ("" if n.when == "always" else f" ({n.when})") for n in MATRIX if n.event == event
    ]


def mail_kinds_used() -> set[str]:
    """Every mail kind the matrices name (payment orders are files)."""
    return {n.kind for n in MATRIX + APPLICATION_MATRIX} - FILE_KINDS


def _rows(matrix: tuple[Notice, ...], conditions: dict[str, str], labels: dict[str, str]) -> list[str]:
    lines = ["| event | French label | when | recipient | mail template |", "|---|---|---|---|---|"]
    for n in matrix:
        when = "" if n.when == "always" else conditions[n.when]
        template = "payment order file" if n.kind in FILE_KINDS else f"`{n.kind}.j2`"
        lines.append(f"| `{n.event}` | {labels.get(n.event, '')} | {when} | {n.recipient} | {template} |")
    return lines


def markdown() -> str:
    """The matrices as the page ``docs/notifications.md``."""
    from states.applications.table import EVENTS as APP_EVENTS
    from states.applications.table import SUBMIT

    labels = {e.name: e.label for e in (OPENING, *EVENTS)}
    case_conditions = {k: v[0] for k, v in CONDITIONS.items()}
    lines = [
        "# Who is told of what",
        "",
        "Generated from the matrix in `states/notifications.py` (`states.notifications.markdown()`; "
        "`conum events` shows the same in its column `told`); a test keeps this page identical to it.",
        "",
        "Every notification is an outbox row written in the transaction of its event, with the case as it is "
        "then (the payload); the delivery renders it in French from `templates/mail/<template>` and sends it "
        "once (see `states/outbox`). Each mail names the case, what happens next and by when, and whom to "
        "contact.",
        "",
        "Recipients: " + "; ".join(f"`{k}`: {v}" for k, v in RECIPIENTS.items()) + ".",
        "",
        "## Recruitment cases",
        "",
        *_rows(MATRIX, case_conditions, labels),
        "",
        "Events that tell no one: " + "; ".join(f"`{e}` ({why})" for e, why in SILENT.items()) + ".",
        "",
        "## Structures' applications",
        "",
        *_rows(APPLICATION_MATRIX, APPLICATION_CONDITIONS, {e.name: e.label for e in (SUBMIT, *APP_EVENTS)}),
        "",
    ]
    return "\n".join(lines)


__all__ = [
    "APPLICATION_MATRIX",
    "BY_EVENT",
    "CONDITIONS",
    "FILE_KINDS",
    "MATRIX",
    "RECIPIENTS",
    "SILENT",
    "Notice",
    "mail_kinds_used",
    "markdown",
    "notices",
    "told",
]
