"""A webhook channel's extra HTTP headers: their check in channels.yml, and their values at send time."""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .fields import Invalid
from .secrets import SecretError, read_secret

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 field-name
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")     # a value may hold tabs, never a line break
# Headers the channel sets itself, or the HTTP client does: overriding one would break the post or its signature
RESERVED = frozenset({"content-type", "content-length", "host", "transfer-encoding", "connection",
                      "x-dumont-signature", "x-dumont-timestamp"})
# Names that carry credentials: their value must come from a file or a variable, like every other secret
_CREDENTIAL = re.compile(r"auth|cookie|token|secret|passw|credential|api[-_]?key|session", re.IGNORECASE)


class InvalidHeader(Invalid):
    """A problem with one header; `at` is where under `headers` (the header, then maybe its key)."""

    def __init__(self, at: tuple[str, ...], problem: str) -> None:
        self.at = at
        super().__init__(problem)


@dataclass(frozen=True)
class SecretValue:
    """A header value kept in a file or an environment variable, read at every send."""

    file: str | None = None
    env: str | None = None

    def read(self, name: str) -> str:
        """The value of header `name` now; SecretError (naming where from, never the value) when unusable."""
        value = read_secret(self.file, self.env)
        if not usable(value):  # the HTTP client would refuse it, quoting the value in its error
            where = f"file {self.file}" if self.file else f"variable {self.env}"
            raise SecretError(f"header {name} from {where} holds a line break, a control character or"
                              " a character beyond Latin-1")
        return value


def usable(value: str) -> bool:
    """Whether `value` can be sent as a header value: Latin-1 (what HTTP/1.1 encodes), no line break or control."""
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return not _CONTROL.search(value)


def check_headers(value: Any) -> dict[str, str | SecretValue]:
    """`headers:` of a webhook channel: name -> value, or name -> {value_file: PATH} / {value_env: VAR}."""
    if not isinstance(value, Mapping) or not value:
        raise Invalid("must be a non-empty mapping of header name to value")
    seen: set[str] = set()
    out: dict[str, str | SecretValue] = {}
    for name, raw in value.items():
        name = str(name)
        if not _TOKEN.fullmatch(name):
            raise InvalidHeader((name,), "is not a valid header name")
        if name.lower() in RESERVED:
            raise InvalidHeader((name,), "is set by the channel itself")
        if name.lower() in seen:
            raise InvalidHeader((name,), "is given twice (header names ignore case)")
        seen.add(name.lower())
        out[name] = _value(name, raw)
    return out


def _value(name: str, raw: Any) -> str | SecretValue:
    if isinstance(raw, Mapping):
        unknown = sorted(str(k) for k in raw if k not in ("value_file", "value_env"))
        if unknown:
            raise InvalidHeader((name, unknown[0]), "unknown field (known: value_file, value_env)")
        given = [k for k in ("value_file", "value_env") if k in raw]
        if len(given) != 1:
            raise InvalidHeader((name,), "needs exactly one of value_file and value_env")
        reference = raw[given[0]]
        if not isinstance(reference, str) or not reference.strip():
            raise InvalidHeader((name, given[0]), "must be a non-empty string")
        return SecretValue(**{given[0][len("value_"):]: reference})
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidHeader((name,), "must be a non-empty string, or a mapping with value_file or value_env")
    if not usable(raw):
        raise InvalidHeader((name,), "must not hold a line break, a control character or a character beyond Latin-1")
    if _CREDENTIAL.search(name):
        # Never quote the value: it is the secret
        raise InvalidHeader((name,), "looks like a credential, which is never inline; use {value_file: PATH} "
                                     "or {value_env: VAR}")
    return raw


def resolve(headers: Mapping[str, str | SecretValue]) -> dict[str, str]:
    """Every header's value now, secrets read from their files or variables (SecretError if one cannot be)."""
    return {name: value.read(name) if isinstance(value, SecretValue) else value for name, value in headers.items()}


def secret_values(headers: Mapping[str, str | SecretValue], resolved: Mapping[str, str]) -> list[str]:
    """The resolved values that are secrets, to keep out of the history."""
    return [resolved[name] for name, value in headers.items() if isinstance(value, SecretValue)]
