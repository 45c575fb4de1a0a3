"""A throwaway PostgreSQL server for tests: ``initdb`` and ``pg_ctl`` of the local installation (Debian's
``postgresql`` package, which ``scripts/test.sh`` installs when it runs as root with apt), one cluster in a
temporary folder, listening on 127.0.0.1 at a free port, with a password-protected user and database. As root the
server runs as the ``postgres`` user that the package creates (PostgreSQL refuses to run as root)."""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SERVER_USER = "postgres"  # the account Debian's package creates; used only when the tests run as root
# Durability off: a test cluster is thrown away, and fsync per commit would dominate its run time.
TEST_SERVER_SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


def server_bin_dir() -> Path | None:
    """The folder with ``initdb`` and ``pg_ctl``: from PATH, else the newest ``/usr/lib/postgresql/<N>/bin``."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    candidates = [path for path in Path("/usr/lib/postgresql").glob("*/bin") if (path / "initdb").is_file()]
    numbered = [path for path in candidates if re.fullmatch(r"\d+", path.parent.name)]
    return max(numbered, key=lambda path: int(path.parent.name)) if numbered else None


def unavailable_reason() -> str | None:
    """Why no test server can be started here, or None when one can."""
    if server_bin_dir() is None:
        return ("no PostgreSQL server binaries (initdb, pg_ctl): apt-get install postgresql "
                "(scripts/test.sh does this when run as root)")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVER_USER)
        except KeyError:
            return f"running as root and no {SERVER_USER!r} user to run the server as (PostgreSQL refuses root)"
        if shutil.which("runuser") is None:
            return "running as root and no runuser to start the server as another user"
    return None


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    password: str
    database: str
    folder: Path
    bin_dir: Path
    start_seconds: float  # initdb to accepting connections

    def environment(self) -> dict[str, str]:
        """The variables deploy/dagster-postgres.yaml reads."""
        return {"DAGSTER_PG_HOST": self.host, "DAGSTER_PG_PORT": str(self.port), "DAGSTER_PG_USERNAME": self.user,
                "DAGSTER_PG_PASSWORD": self.password, "DAGSTER_PG_DB": self.database}

    def url(self, database: str | None = None) -> str:
        """A SQLAlchemy URL (psycopg2, the driver dagster-postgres ships with)."""
        return (f"postgresql+psycopg2://{self.user}:{self.password}@{self.host}:{self.port}/"
                f"{database or self.database}")

    def create_database(self, name: str) -> str:
        """Create database ``name`` owned by the test user; returns its name."""
        _run([str(self.bin_dir / "createdb"), "-h", self.host, "-p", str(self.port), "-U", self.user, name],
             env={**os.environ, "PGPASSWORD": self.password})
        return name


def _run(command: list[str], env: dict[str, str] | None = None) -> None:
    done = subprocess.run(command, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running_postgres(user: str = "dagster", database: str = "dagster") -> Iterator[PostgresServer]:
    """Start a fresh cluster (``initdb``, ``pg_ctl start``) and yield it; stop it and delete its folder after."""
    if reason := unavailable_reason():
        raise RuntimeError(reason)
    bin_dir = server_bin_dir()
    assert bin_dir is not None
    as_server_user = ["runuser", "-u", SERVER_USER, "--"] if os.geteuid() == 0 else []
    # Not under pytest's tmp_path: as root that lies below a folder only root may enter.
    folder = Path(tempfile.mkdtemp(prefix="eemo-postgres-"))
    data, password = folder / "data", secrets.token_hex(16)
    (folder / "password").write_text(password)
    if as_server_user:
        account = pwd.getpwnam(SERVER_USER)
        os.chown(folder, account.pw_uid, account.pw_gid)
        os.chown(folder / "password", account.pw_uid, account.pw_gid)
    started = time.monotonic()
    try:
        _run([*as_server_user, str(bin_dir / "initdb"), "-D", str(data), "-U", user, f"--pwfile={folder / 'password'}",
              "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions"])
        options = " ".join([f"-c listen_addresses=127.0.0.1 -c unix_socket_directories={folder}",
                            *(f"-c {setting}" for setting in TEST_SERVER_SETTINGS)])
        for attempt in range(3):  # another process may take the free port before the server binds it
            port = _free_port()
            try:
                _run([*as_server_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"),
                      "-w", "-t", "120", "-o", f"-p {port} {options}", "start"])
                break
            except RuntimeError:
                if attempt == 2:
                    log = (folder / "server.log").read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"PostgreSQL did not start; server log tail:\n{log}") from None
        server = PostgresServer("127.0.0.1", port, user, password, database, folder, bin_dir,
                                time.monotonic() - started)
        server.create_database(database)
        yield server
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run([*as_server_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w",
                            "stop"], capture_output=True, stdin=subprocess.DEVNULL, timeout=120)
        shutil.rmtree(folder, ignore_errors=True)
