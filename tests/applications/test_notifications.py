"""Each notification about an application renders a French mail from what the real service writes."""

from __future__ import annotations

import os
from pathlib import Path

from applying import Apps
from sqlalchemy import Engine
from sqlmodel import col, select

from states import batch
from states.clock import parse_instant
from states.db import read_session
from states.models import Outbox
from states.notifications import APPLICATION_MATRIX
from states.outbox import build_context
from states.outbox.render import mail_kinds, render


def test_every_application_kind_renders_from_the_service(apps: Apps, engine: Engine) -> None:
    late = apps.submit(at="2026-01-05T10:00")
    batch.sweep(engine, parse_instant("2026-01-16T10:00"), apps.policy)  # reminder to the préfet
    batch.sweep(engine, parse_instant("2026-01-21T10:00"), apps.policy)  # escalation to the ANCT
    apps.fire(late, "give_opinion", "2026-01-22T10:00", actor="prefet:33", opinion="unfavourable")
    apps.fire(late, "refuse", "2026-01-23T10:00", reason="hors critères")
    app = apps.signed(posts=2)["id"]
    apps.fire(app, "request_change", "2026-03-01T10:00", posts="1", reason="demande")
    apps.fire(app, "give_opinion", "2026-03-02T10:00", actor="prefet:33", opinion="favourable")
    apps.fire(app, "refuse", "2026-03-03T10:00", reason="envelope")
    with read_session(engine) as s:
        rows = s.exec(select(Outbox).order_by(col(Outbox.id))).all()
        assert {r.kind for r in rows} == {k for k in mail_kinds() if k.startswith("application_")}
        assert {(r.kind, r.recipient) for r in rows} <= {(n.kind, n.recipient) for n in APPLICATION_MATRIX}
        preview = os.environ.get("CONUM_MAIL_PREVIEW")  # a folder to read the mails in
        for row in rows:
            subject, body = render(row.kind, build_context(s, row))
            where = f"{row.kind} to {row.recipient}"
            if preview:
                Path(preview, f"{row.kind}-{row.recipient}.txt").write_text(f"Objet : {subject}\n\n{body}", "utf-8")
            assert "(s)" not in subject + body, f"{where}: a count without agreement"
            assert subject and "\n" not in subject, where
            assert f"n° {row.payload['application_id']}" in subject, where
            assert "None" not in subject + body and "{{" not in body, where
            assert "Mairie" in body, where
    assert "défavorable" in render("application_opinion", {**_context(rows, "application_opinion"), "opinion": "x"})[1]


def _context(rows: list[Outbox], kind: str) -> dict[str, object]:
    row = next(r for r in rows if r.kind == kind)
    return {**row.payload, "kind": kind, "recipient": row.recipient, "case_id": None}
