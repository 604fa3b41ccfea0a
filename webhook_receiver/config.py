"""The receiver's own configuration: a YAML file, then `DUMONT_RECEIVER_<KEY>` environment overrides."""
from __future__ import annotations

import math
import os
import re
from urllib.parse import parse_qsl, urlsplit
from dataclasses import MISSING, dataclass, fields
from typing import Any, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from exporter.durations import parse_duration as prometheus_duration
from webhook_receiver.store.sqlite import SYNCHRONOUS_MODES

ENV_PREFIX = "DUMONT_RECEIVER_"


class ConfigError(ValueError):
    """A configuration file or override that cannot be used; the message names the source and key."""


@dataclass(frozen=True)
class Config:
    """Every setting of the receiver; durations are seconds."""

    database: str
    channels_file: str
    token_file: str
    history_token_file: str | None = None
    runbooks_dir: str | None = None  # the rendered runbooks (generated/<env>/runbooks), served at /runbooks/
    database_password_file: str | None = None  # PostgreSQL: the password, read from this file
    database_password_env: str | None = None   # PostgreSQL: or from the environment variable of this name
    listen: str = "127.0.0.1:9878"
    external_url: str = "http://127.0.0.1:9878"
    retention: float = 30 * 86400.0
    workers: int = 2
    threads: int = 8
    keepalive_requests: int = 100     # a keep-alive connection is closed after this many requests
    header_timeout: float = 10.0      # from connecting (or a kept-alive request's first byte) to the end of its head
    body_timeout: float = 10.0        # for a body, plus a second per `body_min_rate` bytes received
    body_min_rate: int = 16384        # bytes per second a body must keep up, past body_timeout
    send_timeout: float = 30.0        # for writing one answer to the client
    max_connections: int = 1024       # open connections, shared evenly by the workers; more wait to be accepted
    relay: bool = True               # `serve` also runs the relay worker
    max_body_bytes: int = 1 << 20     # a larger post keeps its first alerts that fit; the rest are counted as cut
    max_read_bytes: int = 64 << 20    # a post larger than this is refused (413): the read is bounded
    busy_timeout: float = 5.0         # how long a write waits for SQLite's lock before answering 503
    synchronous: str = "normal"       # SQLite's: "full" also survives a power loss, at some throughput
    max_attempts: int = 8
    backoff_initial: float = 10.0
    backoff_max: float = 900.0
    defer_limit: float = 3600.0       # a channel's Retry-After may hold a message this long without using attempts
    give_up_after: float = 86400.0    # past max_attempts, a firing alert's message is re-sent until this after its first attempt
    relay_stall_after: float = 60.0   # /-/ready fails when the relay (or one channel's delivery) did no pass for this long
    claim_timeout: float = 300.0      # PostgreSQL: a row a relay claimed this long ago, and never finished, is due again
    batch_size: int = 10
    storm_threshold: int = 20
    relay_interval: float = 1.0
    relay_coalesce: float = 0.02      # a pass starts this long after a webhook commits new work (doubling in a storm)
    prune_interval: float = 3600.0
    heartbeat_url_file: str | None = None  # file holding an outside check's ping URL (healthchecks.io style)
    heartbeat_url_env: str | None = None   # or the environment variable holding it; never the URL itself
    heartbeat_interval: float = 60.0       # the relay pings at most this often, and only while it works
    heartbeat_timeout: float = 10.0        # for one ping (connect, then each read)
    alertmanager_urls: tuple[str, ...] = ()  # every Alertmanager posting here (HA peers too): the relay reconciles
    reconcile_interval: float = 30.0   # how often the relay reads the Alertmanagers' alerts and silences
    reconcile_timeout: float = 5.0     # for each read of one Alertmanager
    reconcile_grace: float = 600.0     # an alert last seen active is resolved after missing this long (> group_interval)
    reconcile_warmup: float = 120.0    # an Alertmanager up for less than this cannot say an alert ended
    prometheus_url: str | None = None  # the fleet dashboard reads the dumont_* series here (unset: no dashboard)
    dashboard_timezone: str = "UTC"    # the zone of the savings' today, month and year (an IANA name)
    dashboard_timeout: float = 5.0     # for all the reads of one dashboard request together
    dashboard_refresh: float = 15.0    # the page fetches its figures again this often
    dashboard_lookback: float = 3600.0  # a scrape target that is down: its machines reported within this are listed
    log_level: str = "info"

    @property
    def host_port(self) -> tuple[str, int]:
        """`listen` split into host and port."""
        host, _, port = self.listen.rpartition(":")
        return host, int(port)


POSTGRES_SCHEMES = ("postgresql://", "postgres://")  # a `database` starting so is a PostgreSQL URL
_DURATION_KEYS = {"relay_coalesce", "claim_timeout", "retention", "busy_timeout", "backoff_initial", "backoff_max", "defer_limit", "relay_interval",
                  "prune_interval", "give_up_after", "relay_stall_after", "header_timeout", "body_timeout",
                  "send_timeout", "heartbeat_interval", "heartbeat_timeout", "reconcile_interval", "reconcile_timeout",
                  "reconcile_grace", "reconcile_warmup", "dashboard_timeout", "dashboard_refresh",
                  "dashboard_lookback"}
_INT_KEYS = {"workers", "threads", "keepalive_requests", "max_body_bytes", "max_read_bytes", "max_attempts",
             "batch_size", "storm_threshold", "body_min_rate", "max_connections"}
_BOOL_KEYS = {"relay"}
_OPTIONAL_KEYS = {"history_token_file", "heartbeat_url_file", "heartbeat_url_env", "database_password_file",
                  "database_password_env", "runbooks_dir", "prometheus_url"}
# Keys that would put a secret in receiver.yml: refused, naming the keys that say where the secret is.
_INLINE_SECRETS = {"heartbeat_url": ("heartbeat_url_file", "heartbeat_url_env"),
                   "database_password": ("database_password_file", "database_password_env")}
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CHOICE_KEYS = {"synchronous": SYNCHRONOUS_MODES}
_POSITIVE_KEYS = _INT_KEYS | {"backoff_initial", "backoff_max", "relay_interval", "prune_interval",
                              "retention", "give_up_after", "relay_stall_after", "header_timeout", "body_timeout",
                              "send_timeout", "heartbeat_interval", "heartbeat_timeout", "claim_timeout",
                              "reconcile_interval", "reconcile_timeout", "dashboard_timeout", "dashboard_refresh",
                              "dashboard_lookback"}
KEYS = tuple(f.name for f in fields(Config))


def parse_duration(value: Any) -> float:
    """Seconds from Prometheus notation (`30s`, `5m`, `1h30m`, `30d`, `250ms`) or a plain number."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 30s or 5m, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    seconds = prometheus_duration(str(value).strip())
    if seconds is None:
        raise ValueError(f"expected a duration like 30s or 5m, got {value!r}")
    return seconds


def _coerce(key: str, value: Any, from_env: bool) -> Any:
    if key == "alertmanager_urls" and (value is None or (from_env and value in ("", "null"))):
        return ()  # no reconciliation
    if value is None or (from_env and value in ("", "null")):
        if key in _OPTIONAL_KEYS:
            return None
        raise ValueError("required")
    if key in _DURATION_KEYS:
        result = parse_duration(value)
        if not math.isfinite(result):  # YAML's .inf and .nan: a cap or a wait must be a number
            raise ValueError(f"expected a finite duration, got {value!r}")
    elif key in _INT_KEYS:
        if isinstance(value, bool) or not (isinstance(value, int) or (from_env and str(value).isdigit())):
            raise ValueError(f"expected an integer, got {value!r}")
        result = int(value)
    elif key in _BOOL_KEYS:
        if from_env and str(value).lower() in ("true", "1", "yes", "false", "0", "no"):
            return str(value).lower() in ("true", "1", "yes")
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {value!r}")
        return value
    elif key == "alertmanager_urls":
        return _urls(value, from_env)
    elif key == "prometheus_url":
        return _urls([value] if isinstance(value, str) else value, False)[0]
    elif key == "dashboard_timezone":
        return _zone_name(value)
    elif key in ("heartbeat_url_file", "heartbeat_url_env"):
        return _secret_reference(key, value)
    elif key in ("database_password_file", "database_password_env"):
        if not isinstance(value, str) or not value:  # never echoed: it may be the password, put in the wrong key
            raise ValueError("expected a non-empty string (a file's path, or an environment variable's name)")
        if key.endswith("_env") and not _ENV_NAME.fullmatch(value):
            raise ValueError("expected an environment variable's name (letters, digits and _), not the password")
        return value
    elif key in _CHOICE_KEYS:
        if value not in _CHOICE_KEYS[key]:  # YAML reads a bare `off` as false: say what is allowed
            raise ValueError(f"expected one of {', '.join(_CHOICE_KEYS[key])}, got {value!r}")
        return value
    else:
        if not isinstance(value, str) or not value:
            raise ValueError(f"expected a non-empty string, got {value!r}")
        return value
    if key in _POSITIVE_KEYS and result <= 0:
        raise ValueError(f"must be greater than 0, got {value!r}")
    return result


def _urls(value: Any, from_env: bool) -> tuple[str, ...]:
    """Base URLs: a YAML list, or from the environment one string separated by commas."""
    if from_env and isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(url, str) for url in value):
        raise ValueError(f"expected a list of URLs, got {value!r}")
    for url in value:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected http:// or https:// URLs, got {url!r}")
        if parts.password is not None:
            raise ValueError("a password inside a URL is refused (it would be logged)")
    if len(set(value)) != len(value):
        raise ValueError("a URL is listed twice")
    return tuple(value)


def _zone_name(value: Any) -> str:
    """An IANA time zone name that this system's (or the tzdata package's) zone database holds."""
    zone_info(value)
    return value


def zone_info(name: Any) -> ZoneInfo:
    """The zone of an IANA name (`Europe/Berlin`); ValueError saying so when there is none."""
    if not isinstance(name, str) or not name or name.startswith("/") or ".." in name:
        raise ValueError(f"expected a time zone name like Europe/Berlin, got {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (expected an IANA name like Europe/Berlin)") from None


def _secret_reference(key: str, value: Any) -> str:
    """A file path or variable name that says where a secret is; never echoes a value that may be the secret."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a non-empty string, got {value!r}")
    if "://" in value:  # the URL itself, written where its place is named
        raise ValueError("secrets are never inline: expected where the URL is (a file's path, or a variable's"
                         " name), got what looks like a URL")
    if key.endswith("_env") and not _ENV_NAME.fullmatch(value):
        raise ValueError("expected an environment variable's name (letters, digits and _)")
    return value


def build_config(values: Mapping[str, Any], source: str = "config",
                 env: Mapping[str, str] | None = None) -> Config:
    """A Config from a mapping plus environment overrides; errors name `source` and the key."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"{source}: expected a mapping of keys, got {type(values).__name__}")
    for key, (file_key, env_key) in _INLINE_SECRETS.items():
        if key in values:
            raise ConfigError(f"{source}: {key}: secrets are never inline; use {file_key} or {env_key}")
    unknown = sorted(set(values) - set(KEYS))
    if unknown:
        raise ConfigError(f"{source}: {unknown[0]}: unknown key (known: {', '.join(KEYS)})")
    settled: dict[str, Any] = {}
    for key, value in values.items():
        try:
            settled[key] = _coerce(key, value, from_env=False)
        except ValueError as exc:
            raise ConfigError(f"{source}: {key}: {exc}") from None
    for key in KEYS:
        name = ENV_PREFIX + key.upper()
        if env is not None and name in env:
            try:
                settled[key] = _coerce(key, env[name], from_env=True)
            except ValueError as exc:
                raise ConfigError(f"environment {name}: {exc}") from None
    for f in fields(Config):
        if f.default is MISSING and f.name not in settled:
            raise ConfigError(f"{source}: {f.name}: required")
    if settled.get("heartbeat_url_file") and settled.get("heartbeat_url_env"):
        raise ConfigError(f"{source}: heartbeat_url_env: set only one of heartbeat_url_file and heartbeat_url_env")
    max_body = settled.get("max_body_bytes", Config.max_body_bytes)
    if settled.get("max_read_bytes", Config.max_read_bytes) < max_body:
        raise ConfigError(f"{source}: max_read_bytes: must be at least max_body_bytes ({max_body})")
    interval = settled.get("relay_interval", Config.relay_interval)
    if not 0 <= settled.get("relay_coalesce", Config.relay_coalesce) <= interval:
        raise ConfigError(f"{source}: relay_coalesce: must be between 0 and relay_interval ({interval:g}s)")
    if settled.get("relay_stall_after", Config.relay_stall_after) <= interval:
        raise ConfigError(f"{source}: relay_stall_after: must be longer than relay_interval ({interval:g}s)")
    # Each worker holds max_connections / workers: past its threads, that leaves room for kept-alive and
    # slow connections (gunicorn answers every request "Connection: close" when it has none).
    workers, threads = settled.get("workers", Config.workers), settled.get("threads", Config.threads)
    if settled.get("max_connections", Config.max_connections) < workers * (threads + 1):
        raise ConfigError(f"{source}: max_connections: must be at least workers x (threads + 1)"
                          f" ({workers * (threads + 1)})")
    check_database(settled, source)
    host_port = settled.get("listen", Config.listen)
    host, _, port = host_port.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"{source}: listen: expected host:port, got {host_port!r}")
    return Config(**settled)


def is_postgres(database: str) -> bool:
    """Whether `database` names a PostgreSQL database (a URL) rather than a SQLite file."""
    return database.startswith(POSTGRES_SCHEMES)


def check_database(settled: Mapping[str, Any], source: str) -> None:
    """A PostgreSQL URL carries no password (it would end in logs and process lists); the password keys need one."""
    database = settled.get("database")
    password_keys = [key for key in ("database_password_file", "database_password_env") if settled.get(key)]
    if database is None:
        return
    if not is_postgres(database):
        if password_keys:
            raise ConfigError(f"{source}: {password_keys[0]}: only for a PostgreSQL database"
                              " (database: postgresql://user@host:port/name)")
        return
    try:
        url = urlsplit(database)
        query = parse_qsl(url.query, keep_blank_values=True)
        url.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as exc:
        raise ConfigError(f"{source}: database: not a valid PostgreSQL URL: {exc}") from None
    if url.password is not None or any(name == "password" for name, _ in query):
        # The message never repeats the URL: it holds the password.
        raise ConfigError(f"{source}: database: a password inside the URL is refused (it would be logged and"
                          " shown in process lists): put it in a file named by database_password_file, or an"
                          " environment variable named by database_password_env")
    if not url.hostname and not any(name == "host" for name, _ in query):
        raise ConfigError(f"{source}: database: expected postgresql://user@host:port/name, got {database!r}")
    if len(password_keys) > 1:
        raise ConfigError(f"{source}: database_password_env: set database_password_file or database_password_env,"
                          " not both")


def database_password(config: Config, env: Mapping[str, str] | None = None) -> str | None:
    """The PostgreSQL password from database_password_file or database_password_env, or None (no password)."""
    if config.database_password_file:
        return read_secret(config.database_password_file, "database_password_file")
    if config.database_password_env:
        env = os.environ if env is None else env
        value = env.get(config.database_password_env, "")
        if not value:
            raise ConfigError(f"database_password_env: the environment variable {config.database_password_env}"
                              " is not set or empty")
        return value
    return None


def load_config(path: str | os.PathLike, env: Mapping[str, str] | None = None) -> Config:
    """Read `path` (YAML) and apply `DUMONT_RECEIVER_*` overrides from `env` (default os.environ)."""
    env = os.environ if env is None else env
    try:
        with open(path, encoding="utf-8") as fh:
            values = yaml.safe_load(fh) or {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return build_config(values, source=str(path), env=env)


def read_secret(path: str, key: str) -> str:
    """The stripped contents of a secret file; the error names the key, never the contents."""
    try:
        with open(path, encoding="utf-8") as fh:
            secret = fh.read().strip()
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc.strerror}") from None
    if not secret:
        raise ConfigError(f"{key}: {path} is empty")
    return secret
