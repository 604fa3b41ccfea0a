"""A throwaway PostgreSQL cluster in a directory: Debian's binaries, 127.0.0.1 only, a free port, trust auth.

Used by the tests (one cluster per session, a database per test copied from a migrated template) and by the
HA stack on loopback. PostgreSQL refuses to run as root, so as root the server runs as the `postgres` system
user that Debian's package creates, in a directory that user owns.

    pg = TempPostgres(tmp_dir).start()     # pg.url: postgresql://dumont@127.0.0.1:<port>/postgres
    url = pg.create_database("history", template="migrated")
    pg.stop()
"""
from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

SUPERUSER = "dumont"          # initdb's superuser, the same whoever runs it (no password: trust on loopback)
SERVER_USER = "postgres"      # the system user the server runs as when we are root (Debian's package creates it)
HINT = "install Debian's postgresql: make setup"
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}\Z")


class PostgresUnavailable(RuntimeError):
    """PostgreSQL's server binaries are missing or the cluster could not start; the message says what to do."""


def find_bindir() -> str:
    """The directory of initdb and pg_ctl: $DUMONT_PG_BINDIR, `pg_config --bindir`, /usr/lib/postgresql/*/bin, PATH."""
    candidates = []
    if os.environ.get("DUMONT_PG_BINDIR"):
        candidates.append(os.environ["DUMONT_PG_BINDIR"])
    if shutil.which("pg_config"):
        try:
            candidates.append(subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True,
                                             timeout=10, check=True).stdout.strip())
        except (OSError, subprocess.SubprocessError):
            pass
    # Debian keeps the server's binaries off PATH, one directory per major version: the newest first.
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                         key=lambda path: int(re.sub(r"\D", "", path.split("/")[-2]) or 0), reverse=True)
    if shutil.which("initdb"):
        candidates.append(os.path.dirname(shutil.which("initdb")))
    for bindir in candidates:
        if all(os.access(os.path.join(bindir, tool), os.X_OK) for tool in ("initdb", "pg_ctl", "postgres")):
            return bindir
    raise PostgresUnavailable(f"PostgreSQL's server binaries (initdb, pg_ctl, postgres) were not found"
                              f" (looked in {', '.join(candidates) or 'pg_config --bindir, /usr/lib/postgresql/*/bin, PATH'}):"
                              f" {HINT}")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class TempPostgres:
    """One PostgreSQL cluster living in `directory`; start() it, stop() it (always: it is a server process)."""

    def __init__(self, directory: str | os.PathLike, fsync: bool = False, port: int | None = None,
                 stop_mode: str = "fast"):
        # fsync off is for tests only: a cluster that must survive a power loss (the HA stack) keeps it on.
        self.fsync = fsync
        self.port = port
        self.stop_mode = stop_mode
        self.bindir = find_bindir()
        self.as_root = os.geteuid() == 0
        self._owned_base = None
        base = Path(directory).resolve()
        if self.as_root:
            try:
                pw = pwd.getpwnam(SERVER_USER)
            except KeyError:
                raise PostgresUnavailable(f"running as root needs the {SERVER_USER!r} system user: {HINT}") from None
            self._uid, self._gid = pw.pw_uid, pw.pw_gid
            if not self._reachable_by_server_user(base):
                # e.g. pytest's temp dirs are 0700 root: the server user could not enter them.
                base = Path(tempfile.mkdtemp(prefix="dumont-pg-"))
                self._owned_base = base
            base.mkdir(parents=True, exist_ok=True)
            os.chown(base, self._uid, self._gid)
        else:
            base.mkdir(parents=True, exist_ok=True)
        self.base = base
        self.data_dir = base / "data"
        self.log_file = base / "postgres.log"
        # A unix socket path is limited to ~107 bytes; the server listens on TCP anyway.
        self.socket_dir = base / "sock"
        if len(str(self.socket_dir)) > 80:
            self.socket_dir = Path(tempfile.mkdtemp(prefix="pgs-"))
        self.socket_dir.mkdir(exist_ok=True)
        if self.as_root:
            os.chown(self.socket_dir, self._uid, self._gid)
        self.started = False

    def _reachable_by_server_user(self, path: Path) -> bool:
        """Whether the server user can enter every existing ancestor of `path` and write the nearest one."""
        existing = path
        while not existing.exists():
            existing = existing.parent
        for ancestor in [existing, *existing.parents]:
            st = ancestor.stat()
            if not (st.st_mode & 0o001 or (st.st_uid == self._uid and st.st_mode & 0o100)):
                return False
        return existing != path or path.stat().st_uid == self._uid or bool(path.stat().st_mode & 0o002)

    def _run(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """A server tool, as the server user when we are root; its output on failure in the error."""
        command = [os.path.join(self.bindir, argv[0]), *argv[1:]]
        if self.as_root:
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd="/")
        if done.returncode != 0:
            log = self.log_file.read_text(errors="replace")[-2000:] if self.log_file.exists() else ""
            raise PostgresUnavailable(f"{argv[0]} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}"
                                      + (f"\nlast lines of {self.log_file}:\n{log}" if log else ""))
        return done

    def start(self) -> "TempPostgres":
        """initdb (once), then start the server on 127.0.0.1 and wait until it accepts connections."""
        if not (self.data_dir / "PG_VERSION").exists():
            self._run("initdb", "-D", str(self.data_dir), "--username", SUPERUSER, "--auth", "trust",
                      "--encoding", "UTF8", "--locale", "C", "--no-instructions")
        fixed = self.port is not None
        for _ in range(1 if fixed else 5):
            port = self.port if fixed else free_port()
            options = (f"-c listen_addresses=127.0.0.1 -p {port} -k {self.socket_dir}"
                       f" -c fsync={'on' if self.fsync else 'off'}"
                       f" -c synchronous_commit={'on' if self.fsync else 'off'}"
                       f" -c full_page_writes={'on' if self.fsync else 'off'} -c max_connections=200")
            try:
                self._run("pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_file), "-o", options, "-w",
                          "-t", "60", "start")
            except PostgresUnavailable:
                if fixed or "already in use" not in self.log_file.read_text(errors="replace")[-2000:]:
                    raise
                continue
            self.port, self.started = port, True
            return self
        raise PostgresUnavailable("no free port found for PostgreSQL on 127.0.0.1")

    def url_for(self, database: str) -> str:
        """The URL of `database` in this cluster (no password: trust on loopback)."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    @property
    def url(self) -> str:
        """The URL of the cluster's `postgres` database."""
        return self.url_for("postgres")

    def _admin(self, sql: str) -> None:
        import psycopg  # only the callers that create databases need the driver

        with psycopg.connect(self.url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql)

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create `name` (empty, or a copy of `template`, which must have no open connection); its URL."""
        for part in (name, template):
            if part is not None and not _NAME.match(part):
                raise ValueError(f"database name {part!r}: use lower-case letters, digits and _")
        self._admin(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """Drop `name`, closing its connections first."""
        if not _NAME.match(name):
            raise ValueError(f"database name {name!r}: use lower-case letters, digits and _")
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def add_password_role(self, role: str, password: str) -> None:
        """A login role that must give `password` over TCP (scram-sha-256), unlike the trusted superuser."""
        if not _NAME.match(role):
            raise ValueError(f"role name {role!r}: use lower-case letters, digits and _")
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(password)))
            hba = self.data_dir / "pg_hba.conf"
            line = f"host all {role} 127.0.0.1/32 scram-sha-256\n"
            text = hba.read_text()
            if line not in text:  # first match wins: before initdb's `trust` lines (rewriting keeps the owner)
                hba.write_text(line + text)
            conn.execute("SELECT pg_reload_conf()")

    def stop(self) -> None:
        """Stop the server (if it started) and remove a directory this object made for itself."""
        try:
            if self.started or (self.data_dir / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data_dir), "-m", self.stop_mode, "-w", "-t", "60", "stop")
        finally:
            self.started = False
            if self._owned_base is not None:
                shutil.rmtree(self._owned_base, ignore_errors=True)
            if self.socket_dir.parent != self.base:
                shutil.rmtree(self.socket_dir, ignore_errors=True)

    def __enter__(self) -> "TempPostgres":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
