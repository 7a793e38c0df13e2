"""The data each event takes, typed once.

One pydantic model per event, referenced from the lifecycle table. Everything
that reads or asks for an event's data is derived from it: the service's
validation (``normalise``), the CLI's ``--set`` keys and messages, ``conum
events`` (each event's fields), and the parameter schema the Prefect UI renders
as a form (French titles and help texts, drop-downs, date pickers).

A field's declared type is what a form asks for (a date, an amount, an id);
its validator checks and converts what a person typed, with a message that
says what to give. What the service stores in the history is ``stored()``:
dates as ISO text, amounts in euros as integer cents under ``<name>_cents``.
Adding a field to an event is one line in its model.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Annotated, Any, ClassVar, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, ValidationInfo

from states.errors import BadInput
from states.policy import Policy

_DEFAULTS = Policy()


def _where(info: ValidationInfo) -> str:
    event = (info.context or {}).get("event", "the event")
    return f"'{info.field_name}' of '{event}'"


def _text(value: Any, info: ValidationInfo) -> str:
    text = str(value).strip()
    if not text:
        raise ValueError(f"{_where(info)} is empty: give a value")
    return text


def _date(value: Any, info: ValidationInfo) -> dt.date:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"{_where(info)} must be a date YYYY-MM-DD, got '{value}'") from None


_AMOUNT = re.compile(r"^\d{1,7}([.,]\d{1,2})?$")


def _euros(value: Any, info: ValidationInfo) -> Decimal:
    text = str(value).strip()
    wrong = f"{_where(info)} must be a positive amount in euros with at most 2 decimals"
    if not _AMOUNT.match(text):
        raise ValueError(f"{wrong}, such as 1850.00, got '{value}'")
    try:
        amount = Decimal(text.replace(",", "."))
    except InvalidOperation:
        raise ValueError(f"{_where(info)} must be an amount in euros such as 1850.00, got '{value}'") from None
    if not amount.is_finite() or amount <= 0 or amount != amount.quantize(Decimal("0.01")):
        raise ValueError(f"{wrong}, got '{value}'")
    return amount


def _ref(value: Any, info: ValidationInfo) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{_where(info)} must be a training organisation id, got '{value}'") from None


class _FreeText:
    """Marks a field whose text a person types freely: personal data, kept apart from the history rows."""


Text = Annotated[str, BeforeValidator(_text)]
FreeText = Annotated[str, BeforeValidator(_text), _FreeText()]
Day = Annotated[dt.date, BeforeValidator(_date)]
Euros = Annotated[Decimal, BeforeValidator(_euros)]
OrgId = Annotated[int, BeforeValidator(_ref)]


class EventData(BaseModel):
    """The data of an event that takes none; the base of every event's model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Shown by ``conum events`` and as the form's title.
    title: ClassVar[str] = "Aucune donnée"

    def stored(self, order: tuple[str, ...] = ()) -> dict[str, Any]:
        """Return the data as the history and the effects read it, keys in ``order`` first."""
        values = self.model_dump(exclude_none=True)
        keys = [k for k in order if k in values] + [k for k in values if k not in order]
        out: dict[str, Any] = {}
        for key in keys:
            value = values[key]
            if isinstance(value, Decimal):
                out[f"{key}_cents"] = int(value * 100)
            elif isinstance(value, dt.date):
                out[key] = value.isoformat()
            else:
                out[key] = value
        return out

    @classmethod
    def required(cls) -> tuple[str, ...]:
        return tuple(name for name, f in cls.model_fields.items() if f.is_required())

    @classmethod
    def free_text_keys(cls) -> frozenset[str]:
        """Return the fields a person types freely (reasons): stored as notes, never in a history row."""
        return _free_text_keys(cls)

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(cls.model_fields)

    @classmethod
    def describe(cls) -> list[dict[str, Any]]:
        """Return each field as ``conum events --json`` lists it: name, type, required, French title and help."""
        out = []
        for name, f in cls.model_fields.items():
            types = [getattr(t, "__origin__", t) for t in (f.annotation, *get_args(f.annotation))]
            kinds = [_KIND[t] for t in types if t in _KIND]
            field: dict[str, Any] = {
                "name": name,
                "type": kinds[0] if kinds else "string",
                "required": f.is_required(),
                "title": f.title,
                "help": f.description,
            }
            if isinstance(f.json_schema_extra, dict) and "enum" in f.json_schema_extra:
                field["choices"] = f.json_schema_extra["enum"]
            out.append(field)
        return out


#: The type names ``conum events`` gives: what a person types.
_KIND: dict[Any, str] = {str: "string", dt.date: "date", Decimal: "amount", int: "integer"}


@cache
def _free_text_keys(model: type[EventData]) -> frozenset[str]:
    def marked(f: Any) -> bool:
        metadata = [*f.metadata, *(m for arg in get_args(f.annotation) for m in getattr(arg, "__metadata__", ()))]
        return any(isinstance(m, _FreeText) for m in metadata)

    return frozenset(name for name, f in model.model_fields.items() if marked(f))


class DeclineData(EventData):
    title: ClassVar[str] = "Décliner la candidature"
    reason: FreeText = Field(title="Motif", description="Pourquoi la structure ne retient pas ce candidat.")


class WithdrawData(EventData):
    title: ClassVar[str] = "Retrait du candidat"
    reason: FreeText | None = Field(None, title="Motif", description="Pourquoi le candidat se retire (facultatif).")


class ContactData(EventData):
    title: ClassVar[str] = "Contacter l'organisme de formation"
    org: OrgId = Field(
        title="Organisme de formation",
        description="Numéro de l'organisme de formation habilité contacté (liste : conum training-org).",
    )


class ContractData(EventData):
    title: ClassVar[str] = "Signer le contrat"
    type: Text = Field(
        title="Type de contrat",
        description="CDI, CDD, PEC ou contrat de projet.",
        json_schema_extra={"enum": list(_DEFAULTS.contract_types)},
    )
    start: Day = Field(title="Début du contrat", description="Premier jour du contrat (AAAA-MM-JJ).")
    salary: Euros = Field(
        title="Salaire brut mensuel (€)",
        description="Salaire brut mensuel à temps plein, au moins le SMIC en vigueur au début du contrat.",
    )
    end: Day | None = Field(
        None, title="Fin du contrat", description="Dernier jour du contrat ; sans objet pour un CDI."
    )


class DatedData(EventData):
    title: ClassVar[str] = "Date du fait"
    date: Day | None = Field(
        None, title="Date", description="Jour où le fait a eu lieu (par défaut, le jour de l'action)."
    )


class RuptureData(EventData):
    title: ClassVar[str] = "Rompre le contrat"
    reason: Text = Field(
        title="Motif de rupture",
        description="Licenciement, démission, non-reconduction du CDD ou fin de subventionnement.",
        json_schema_extra={"enum": list(_DEFAULTS.rupture_reasons)},
    )
    date: Day = Field(title="Date de la rupture", description="Dernier jour travaillé, dans la durée du contrat.")


class CancelData(EventData):
    title: ClassVar[str] = "Annuler le dossier"
    reason: FreeText = Field(title="Motif", description="Pourquoi le dossier est annulé.")


def normalise(event: str, model: type[EventData], raw: Mapping[str, Any]) -> dict[str, Any]:
    """Check ``raw`` against the event's model and return the data as stored (dates ISO, amounts in cents).

    Empty values count as not given. Raises ``BadInput`` with one message that says what to give.
    """
    given = {k: v for k, v in raw.items() if v is not None and v != ""}
    allowed = model.keys()
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        accepted = ", ".join(sorted(allowed)) or "none"
        raise BadInput(f"'{event}' takes no data {', '.join(unknown)}: its keys are {accepted}")
    missing = [k for k in model.required() if k not in given]
    if missing:
        keys = " ".join(f"--set {k}=…" for k in missing)
        raise BadInput(f"'{event}' needs {', '.join(missing)}: add {keys}")
    try:
        data = model.model_validate(given, context={"event": event})
    except ValidationError as exc:
        raise BadInput(_first_error(event, exc)) from None
    return data.stored(order=tuple(given))


def _first_error(event: str, exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    if err["type"] == "value_error":
        return str(err["ctx"]["error"])
    key = ".".join(str(part) for part in err["loc"])
    return f"'{key}' of '{event}': {err['msg']}"
