"""Processes the project starts: none outlives its command, and the simulation keeps to its own server.

Real processes throughout: the installed ``conum`` command, real Prefect servers, SIGKILL.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from base64 import b64encode
from collections.abc import Iterator
from pathlib import Path

import pytest

from flows.server import HOME_PREFIX, TemporaryServer, reap_stale
from states.processes import same_process, start_time

CONUM = str(Path(sys.executable).with_name("conum"))


@pytest.fixture(scope="module")
def server_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The servers' records and template database of these tests (none of the user's cache)."""
    return tmp_path_factory.mktemp("conum-cache")


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _tree(pid: int) -> dict[int, tuple[int | None, str]]:
    """Every descendant of ``pid``: its start time and command line."""
    tree, found, todo = _children(), {}, [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            try:
                args = (Path("/proc") / str(child) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            found[child] = (start_time(child), args)
            todo.append(child)
    return found


def _env(cache: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    return {**env, "CONUM_CACHE_DIR": str(cache), **extra}


def _until(check: object, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.2)
    return False


@pytest.mark.slow
def test_a_killed_simulation_leaves_no_process_behind(tmp_path: Path, server_cache: Path) -> None:
    proc = subprocess.Popen(
        [CONUM, "simulate", "--posts", "300", "--report", str(tmp_path / "out" / "report.html")],
        cwd=tmp_path,
        env=_env(server_cache),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # the point where it has all its processes: its Prefect server and its delivery process
        def both() -> bool:
            args = [a for _, a in _tree(proc.pid).values()]
            return any("uvicorn" in a for a in args) and any("states.outbox.process" in a for a in args)

        assert _until(lambda: both() or proc.poll() is not None, 600), "the simulation did not start its processes"
        assert proc.poll() is None, "the simulation ended before it could be killed: give it more posts"
        started = _tree(proc.pid)
        assert any("uvicorn" in a for _, a in started.values())
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def left() -> list[str]:
        return [args for pid, (born, args) in started.items() if same_process(pid, born)]

    _until(lambda: not left(), 10)
    assert left() == []

    # what it left on disk, its server's record and folder, goes at the next start
    records = list((server_cache / "servers").glob(f"{proc.pid}-*.json"))
    assert records, "the server was not recorded"
    home = Path(json.loads(records[0].read_text())["home"])
    reap_stale(server_cache)
    assert not records[0].exists() and not home.exists()


def test_a_server_whose_command_died_is_ended_at_the_next_start(tmp_path: Path) -> None:
    """A server that outlived its command (started from a thread, or on another system) is ended by the next start."""
    orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], process_group=0)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a command that has ended
    home = tmp_path / f"{HOME_PREFIX}orphan"
    home.mkdir()
    keep = tmp_path / "not-a-server-folder"
    keep.mkdir()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], process_group=0)
    (tmp_path / "servers").mkdir()
    for name, server, parent, folder in (("a", orphan.pid, gone.pid, home), ("b", live.pid, os.getpid(), keep)):
        record = {"pid": server, "started": start_time(server), "parent": parent, "home": str(folder)}
        (tmp_path / "servers" / f"{name}.json").write_text(json.dumps(record))
    try:
        assert reap_stale(tmp_path) == 1
        assert orphan.wait(timeout=10) == -signal.SIGKILL
        assert not home.exists()
        assert live.poll() is None  # its command still runs: left alone
        assert [p.name for p in (tmp_path / "servers").iterdir()] == ["b.json"]
    finally:
        for p in (orphan, live):
            p.kill()
            p.wait()


@pytest.fixture(scope="module")
def operators_server(server_cache: Path) -> Iterator[tuple[str, str]]:
    """A server with a login, as ``make up`` starts one: (its API URL, its login)."""
    auth = f"conum:{secrets.token_urlsafe(12)}"
    with TemporaryServer(server_cache, auth=auth) as server:
        yield server.wait_ready(), auth


def _flow_runs(url: str, auth: str) -> list[str]:
    request = urllib.request.Request(f"{url}/flow_runs/filter", data=b"{}", method="POST")
    request.add_header("Authorization", "Basic " + b64encode(auth.encode()).decode())
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as answer:
        return [run["name"] for run in json.load(answer)]


@pytest.mark.slow
def test_the_simulation_writes_into_a_running_server_only_when_told(
    tmp_path: Path, server_cache: Path, operators_server: tuple[str, str]
) -> None:
    url, auth = operators_server
    # the shell of an operator who followed the README: PREFECT_API_URL and the login exported
    env = _env(server_cache, PREFECT_API_URL=url, PREFECT_API_AUTH_STRING=auth)
    done = subprocess.run(
        [CONUM, "simulate", "--posts", "50", "--report", "alone/report.html", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["ok"]
    assert _flow_runs(url, auth) == []

    told = subprocess.run(
        [CONUM, "simulate", "--posts", "12", "--report", "told/report.html", "--json", "--prefect-api", url],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert told.returncode == 0, told.stderr[-2000:]
    runs = _flow_runs(url, auth)
    assert json.loads(told.stdout)["ok"] and any(name.startswith("mois-") for name in runs)


@pytest.mark.slow
@pytest.mark.parametrize("login", ["conum:wrong", ""])
def test_a_wrong_login_is_one_clear_line(
    login: str, tmp_path: Path, server_cache: Path, operators_server: tuple[str, str]
) -> None:
    url, auth = operators_server
    before = _flow_runs(url, auth)
    done = subprocess.run(
        [CONUM, "simulate", "--posts", "12", "--report", "out/report.html", "--prefect-api", url],
        cwd=tmp_path,  # no run/api-auth here
        env=_env(server_cache, PREFECT_API_AUTH_STRING=login),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "refused" in lines[0] and "PREFECT_API_AUTH_STRING" in lines[0], done.stderr
    assert "HTTP 401" in lines[0]
    assert _flow_runs(url, auth) == before


def test_an_unreachable_prefect_api_is_one_clear_line(tmp_path: Path, server_cache: Path) -> None:
    from flows.server import free_port

    done = subprocess.run(
        [CONUM, "simulate", "--posts", "12", "--prefect-api", f"http://127.0.0.1:{free_port()}/api"],
        cwd=tmp_path,
        env=_env(server_cache),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "no Prefect server answers" in lines[0], done.stderr


ROOT = Path(__file__).resolve().parent.parent


def test_make_down_stops_what_make_up_recorded_and_nothing_else(tmp_path: Path) -> None:
    # a server of ours (its command line names Prefect), leading its own group as `make up` starts it
    server = subprocess.Popen(
        [sys.executable, "-c", "import time, sys; time.sleep(120)", "prefect", "server", "start"], process_group=0
    )
    # a stale pid file (a reboot): its pid now names somebody else's process, which must survive
    stranger = subprocess.Popen(["sleep", "120"], process_group=0)
    (tmp_path / "prefect-server.pid").write_text(f"{server.pid}\n")
    (tmp_path / "prefect-server-2.pid").write_text(f"{stranger.pid}\n")
    try:
        done = subprocess.run(
            ["bash", str(ROOT / "scripts" / "down.sh")],
            env={**os.environ, "CONUM_RUN_DIR": str(tmp_path)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert server.wait(timeout=10) == -signal.SIGTERM
        assert stranger.poll() is None
        assert list(tmp_path.glob("*.pid")) == []
    finally:
        for p in (server, stranger):
            p.kill()
            p.wait()


def test_make_up_deletes_stale_pid_files_first(tmp_path: Path) -> None:
    stranger = subprocess.Popen(["sleep", "120"])
    (tmp_path / "prefect-worker.pid").write_text(f"{stranger.pid}\n")
    (tmp_path / "prefect-server.pid").write_text("999999999\n")
    try:
        done = subprocess.run(
            ["bash", "-c", f'source "{ROOT}/scripts/pids.sh" && clean_stale "{tmp_path}"'],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert list(tmp_path.glob("*.pid")) == [] and stranger.poll() is None
        assert "stale prefect-worker.pid" in done.stdout
    finally:
        stranger.kill()
        stranger.wait()
