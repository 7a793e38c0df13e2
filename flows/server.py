"""A temporary local Prefect server, for one command, that never outlives it.

``conum simulate`` runs its flows against a server of its own (not the one
``make up`` starts, nor whatever ``PREFECT_API_URL`` names): ``start()``
launches Prefect's API server as a child process on a free port of
127.0.0.1, with its own ``PREFECT_HOME`` in a new temporary folder, telemetry
off, no UI, and none of the caller's ``PREFECT_*`` settings (nor its current
folder's ``.env`` or ``prefect.toml``).

It dies with its parent: on Linux the kernel kills it (``PR_SET_PDEATHSIG``,
``states.processes``) when the command ends, however it ends; it leads a
process group of its own, which ``stop()`` ends with SIGTERM, then SIGKILL.
Each server is recorded in ``<cache>/servers/<pid>.json`` (the cache is
``$CONUM_CACHE_DIR``, else ``$XDG_CACHE_HOME/conum``, else
``~/.cache/conum``): the next ``start()`` ends any server whose command is gone
and deletes its folder (``reap_stale``), so a crash leaves nothing for long.

Cost: a new Prefect database is migrated and its block types registered when
the server starts (about 16 s of CPU). The first server of a Prefect version
copies its database, migrated and still empty, into the cache as soon as it
answers; later servers start from a copy of it, without migrating (about 7 s
of CPU).

Start the server from the main thread: the kernel's signal follows the thread
that started the child (see ``states.processes``).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from base64 import b64encode
from importlib.metadata import version
from pathlib import Path
from types import TracebackType

from states.errors import BadInput, ConumError, NotAllowed
from states.processes import die_with_parent, kill_group, same_process, start_time

#: The temporary servers' folders are named so; ``reap_stale`` deletes no other folder.
HOME_PREFIX = "conum-server-"
#: Prefect's API server as Prefect starts its own temporary one (without the UI), on 127.0.0.1.
UVICORN = [sys.executable, "-m", "uvicorn", "--factory", "prefect.server.api.server:create_app", "--host", "127.0.0.1"]
UVICORN += ["--log-level", "warning", "--lifespan", "on"]
#: Seconds a server has to answer once started (a loaded 2-core machine needs tens of seconds).
READY_TIMEOUT = 180.0
#: Seconds ``stop()`` waits after SIGTERM before SIGKILL.
STOP_TIMEOUT = 10.0


class ServerFailed(ConumError):
    """The temporary Prefect server did not start."""

    rule = "prefect"


def cache_dir() -> Path:
    """Where the servers' records and the migrated template database live."""
    if os.environ.get("CONUM_CACHE_DIR"):
        return Path(os.environ["CONUM_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "conum"


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _template(cache: Path) -> Path:
    return cache / f"prefect-{version('prefect')}.db"


def reap_stale(cache: Path | None = None) -> int:
    """End every recorded server whose command is gone, delete its folder and record; return how many."""
    folder = (cache or cache_dir()) / "servers"
    reaped = 0
    for record in sorted(folder.glob("*.json")):
        try:
            data = json.loads(record.read_text())
            pid, parent, home = int(data["pid"]), int(data["parent"]), Path(data["home"])
        except (OSError, ValueError, KeyError, TypeError):
            record.unlink(missing_ok=True)  # half-written by a command killed meanwhile
            continue
        if same_process(parent, data.get("parent_started")):
            continue  # its command still runs: its server is in use
        if same_process(pid, data.get("started")):
            kill_group(pid)
            reaped += 1
        if home.name.startswith(HOME_PREFIX):
            shutil.rmtree(home, ignore_errors=True)
        record.unlink(missing_ok=True)
    return reaped


class TemporaryServer:
    """A Prefect API server of this process's own; ``with`` it, or ``stop()`` it (also at exit)."""

    def __init__(self, cache: Path | None = None, auth: str | None = None) -> None:
        """Start the server (it boots in the background: ``wait_ready``); with ``auth`` (``user:password``)
        it answers only calls that carry that login (Prefect's basic authentication)."""
        self.cache = cache or cache_dir()
        self.auth = auth
        reap_stale(self.cache)
        self.home = Path(tempfile.mkdtemp(prefix=HOME_PREFIX))
        self.seeded = self._seed()
        self.record = self.cache / "servers" / f"{os.getpid()}-{self.home.name}.json"
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self._launch()
        atexit.register(self.stop)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def _seed(self) -> bool:
        template = _template(self.cache)
        if not template.is_file():
            return False
        try:
            shutil.copyfile(template, self.home / "prefect.db")
            memo = template.with_suffix(".memo.toml")
            if memo.is_file():
                shutil.copyfile(memo, self.home / "memo_store.toml")
        except OSError:
            (self.home / "prefect.db").unlink(missing_ok=True)
            return False
        return True

    def _environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update(
            PREFECT_HOME=str(self.home),
            PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{self.home / 'prefect.db'}",
            PREFECT_API_DATABASE_MIGRATE_ON_START="false" if self.seeded else "true",
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_UI_ENABLED="false",
            PREFECT_LOGGING_LEVEL="WARNING",
            PREFECT__SERVER_EPHEMERAL="1",  # Prefect's own temporary server: the services it needs only
            PREFECT__SERVER_FINAL="1",
            DO_NOT_TRACK="1",
        )
        if self.auth:
            env["PREFECT_SERVER_API_AUTH_STRING"] = self.auth
        return env

    def _launch(self) -> None:
        self.port = free_port()
        log = (self.home / "server.log").open("ab")
        try:
            self.process = subprocess.Popen(
                [*UVICORN, "--port", str(self.port)],
                env=self._environment(),
                cwd=self.home,  # no .env nor prefect.toml of the caller's folder
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                process_group=0,
                preexec_fn=die_with_parent(),
            )
        finally:
            log.close()
        self.record.parent.mkdir(parents=True, exist_ok=True)
        partial = self.record.with_suffix(".tmp")
        partial.write_text(
            json.dumps(
                {
                    "pid": self.process.pid,
                    "started": start_time(self.process.pid),
                    "parent": os.getpid(),
                    "parent_started": start_time(os.getpid()),
                    "home": str(self.home),
                    "port": self.port,
                }
            )
        )
        partial.replace(self.record)

    def _log_tail(self) -> str:
        try:
            lines = (self.home / "server.log").read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1].strip() if lines else ""

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> str:
        """Wait until the server answers; return its API URL. Raise ``ServerFailed`` (and stop it) if it cannot."""
        deadline = time.monotonic() + timeout
        retries = 3
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                tail = self._log_tail()
                if retries and "address already in use" in tail.lower():  # another process took the port
                    retries -= 1
                    self._launch()
                    continue
                self.stop()
                raise ServerFailed(
                    f"the temporary Prefect server stopped at start (exit code {self.process.returncode}): "
                    f"{tail or 'no message'}; run the command again, or give a server with --prefect-api URL"
                )
            try:
                with urllib.request.urlopen(f"{self.api_url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            time.sleep(0.2)
        else:
            self.stop()
            raise ServerFailed(
                f"the temporary Prefect server did not answer within {timeout:.0f} s (the machine may be overloaded): "
                "run the command again, or give a server with --prefect-api URL"
            )
        if not self.seeded:
            self._keep_template()
        return self.api_url

    def _keep_template(self) -> None:
        """Keep a copy of the new database, migrated and still empty, for the next servers."""
        template = _template(self.cache)
        partial = template.with_name(f"{template.name}.{os.getpid()}.tmp")
        with contextlib.suppress(OSError, sqlite3.Error):
            source = sqlite3.connect(self.home / "prefect.db")
            try:
                target = sqlite3.connect(partial)
                try:
                    source.backup(target)
                finally:
                    target.close()
            finally:
                source.close()
            memo = self.home / "memo_store.toml"
            if memo.is_file():
                shutil.copyfile(memo, template.with_suffix(".memo.toml"))
            partial.replace(template)
        partial.unlink(missing_ok=True)

    def stop(self) -> None:
        """End the server (SIGTERM to its group, then SIGKILL), delete its folder and its record."""
        proc = self.process
        if proc is not None and proc.returncode is None:
            kill_group(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=STOP_TIMEOUT)
            kill_group(proc.pid, signal.SIGKILL)  # whatever of its group is left
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=STOP_TIMEOUT)
        shutil.rmtree(self.home, ignore_errors=True)
        self.record.unlink(missing_ok=True)

    def __enter__(self) -> TemporaryServer:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def api_auth() -> str | None:
    """The login of a Prefect server: ``PREFECT_API_AUTH_STRING``, else the line ``make up`` writes in run/api-auth.

    ``run/api-auth`` is looked for in the current folder, then in the checkout this code runs from.
    """
    if os.environ.get("PREFECT_API_AUTH_STRING"):
        return os.environ["PREFECT_API_AUTH_STRING"]
    checkout = Path(__file__).resolve().parent.parent
    for folder in (Path.cwd(), checkout):
        with contextlib.suppress(OSError, UnicodeDecodeError):
            line = (folder / "run" / "api-auth").read_text().strip().splitlines()
            if line and line[0].strip():
                return line[0].strip()
    return None


def check_api(url: str, auth: str | None, timeout: float = 10.0) -> None:
    """Refuse, in one line, a Prefect API that does not answer or refuses the login."""
    if not url.startswith(("http://", "https://")):
        raise BadInput(f"--prefect-api {url!r} is not an http(s) URL: give e.g. http://127.0.0.1:4200/api")
    request = urllib.request.Request(f"{url.rstrip('/')}/admin/version")
    if auth:
        request.add_header("Authorization", "Basic " + b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            given = "the login given" if auth else "no login"
            raise NotAllowed(
                f"the Prefect server at {url} refused {given} (HTTP {exc.code}): set PREFECT_API_AUTH_STRING to its "
                "user:password (make up writes it into run/api-auth)"
            ) from None
        raise BadInput(
            f"{url} answered HTTP {exc.code}, not as a Prefect API: give the API's URL, ending in /api "
            "(e.g. http://127.0.0.1:4200/api)"
        ) from None
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise BadInput(
            f"no Prefect server answers at {url} ({reason}): start it (make up) or leave out --prefect-api "
            "to use a temporary server"
        ) from None


def use_api(url: str, auth: str | None, home: Path | None = None) -> None:
    """Point this process's Prefect client at ``url`` with ``auth``, whatever the profile or environment says.

    Call it before Prefect is imported; ``flows.cli`` also applies it with ``temporary_settings`` once imported.
    ``home`` becomes the client's ``PREFECT_HOME`` (a temporary server's: nothing is left in ~/.prefect).
    """
    for name in ("PREFECT_API_KEY", "PREFECT_API_AUTH_STRING", "PREFECT_PROFILE", "PREFECT_PROFILES_PATH"):
        os.environ.pop(name, None)
    os.environ["PREFECT_API_URL"] = url
    if home is not None:
        os.environ["PREFECT_HOME"] = str(home)
    if auth:
        os.environ["PREFECT_API_AUTH_STRING"] = auth
    os.environ["PREFECT_SERVER_EPHEMERAL_ENABLED"] = "false"  # never a server started silently in this process
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def flush_to_server() -> None:
    """Send the logs and events this process still holds, before its server stops (sync code only)."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    with contextlib.suppress(Exception):  # best effort: the runs are over, only their last log lines may be lost
        APILogWorker.drain_all(timeout=10)
    with contextlib.suppress(Exception):
        EventsWorker.drain_all(timeout=10)
