"""``retention``: anonymise, every night, the candidates the programme did not retain once their time is over.

The work is ``states.privacy.anonymise``: a candidate whose cases all ended without a
contract is anonymised ``retention_months`` after the last one ended (longer with their
consent); their name, e-mail, the free text typed about them, the outbox payloads and the
mail copies on disk are scrubbed, and the history rows stay as they were. Running it twice
anonymises no one twice.

Artifact: ``retention-summary`` (markdown, in French: how many people were anonymised).
"""

from __future__ import annotations

from datetime import datetime

from prefect import flow, get_run_logger

from flows.common import engine, instant, markdown, policy, settings
from states.clock import show
from states.privacy import anonymise


@flow(name="retention", retries=0, persist_result=False)
def retention(at: datetime | None = None) -> dict[str, int]:
    """Anonymise the candidates not retained whose retention period is over; return how many.

    Args:
        at: The instant of the run (default now).
    """
    when = instant(at)
    count = anonymise(engine(), when, policy(), mail_dir=settings().mail_dir)
    text = (
        f"# Protection des données — {show(when)}\n\n"
        f"- personnes anonymisées : {count}\n\n"
        "Nom, adresse, motifs saisis, notifications et copies de courriels de ces personnes ont été effacés ; "
        "l'historique des dossiers garde sa forme et ses montants.\n"
    )
    markdown("retention-summary", text, "Anonymisation des candidats non retenus")
    get_run_logger().info("%s candidate(s) anonymised", count)
    return {"anonymised": count}
