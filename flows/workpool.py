"""The work pool ``conum``: Prefect's process pool, whose runs start the engine directly.

    .venv/bin/python -m flows.workpool [NAME]

Creates the pool, or brings an existing one up to date. Its base job template
is Prefect's own for process workers, with one default changed: ``command`` is
this interpreter running ``-m prefect.engine``. A process worker whose job has
a ``command`` starts that one process per flow run; without one, Prefect 3.9
starts a workspace supervisor that then starts the engine, two Python processes
that each import Prefect before the run begins (about a second each here): an
operator's action would wait for both (``docs/scaling.md``). The path names the
project's interpreter, so it is set where the pool is made, on the machine that
runs the workers, not written in ``prefect.yaml``.
"""

from __future__ import annotations

import copy
import sys
from typing import Any

POOL = "conum"


def engine_command() -> str:
    """The command a flow run starts: this interpreter running Prefect's engine."""
    from prefect.utilities.processutils import command_to_string

    return command_to_string([sys.executable, "-m", "prefect.engine"])


def base_job_template() -> dict[str, Any]:
    """Prefect's process template, with the engine command as the default of ``command``."""
    from prefect.workers.process import ProcessWorker

    template = copy.deepcopy(ProcessWorker.get_default_base_job_template())
    template["variables"]["properties"]["command"]["default"] = engine_command()
    return template


def ensure(name: str = POOL) -> str:
    """Create the process pool ``name`` with that template, or update it; say which."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
    from prefect.exceptions import ObjectNotFound

    template = base_job_template()
    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(name)
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(name=name, type="process", base_job_template=template))
            return "created"
        client.update_work_pool(name, WorkPoolUpdate(base_job_template=template))
        return "updated"


if __name__ == "__main__":
    pool = sys.argv[1] if len(sys.argv) > 1 else POOL
    print(f"work pool {pool} (process, one engine process per run) {ensure(pool)}")
