"""The work pool make up creates: Prefect's process pool, whose runs start the engine directly."""

from __future__ import annotations

import sys

from prefect import get_client
from prefect.workers.process import ProcessWorker

from flows.workpool import ensure


def test_the_pool_starts_one_engine_process_per_run_and_is_kept_up_to_date(prefect_harness: None) -> None:
    assert ensure("conum-pool-test") == "created"
    with get_client(sync_client=True) as client:
        pool = client.read_work_pool("conum-pool-test")
    command = pool.base_job_template["variables"]["properties"]["command"]
    assert command["default"].split() == [sys.executable, "-m", "prefect.engine"]
    # everything else is Prefect's own process template
    default = ProcessWorker.get_default_base_job_template()
    assert pool.base_job_template["job_configuration"] == default["job_configuration"]
    assert pool.type == "process"
    # made again (make up after an upgrade): updated in place, not refused
    assert ensure("conum-pool-test") == "updated"
