"""Read a secret from a file or an environment variable at send time."""
from __future__ import annotations

import os


class SecretError(Exception):
    """A secret could not be read; the message names where from, never the value."""


def read_secret(path: str | None = None, env: str | None = None) -> str:
    """Return the secret kept in file `path` (trailing newline stripped) or in variable `env`."""
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                value = f.read().rstrip("\r\n")
        except OSError as exc:
            # strerror only: the path is ours to name, the content never leaves this function
            raise SecretError(f"cannot read secret file {path}: {exc.strerror}") from None
        if not value:
            raise SecretError(f"secret file {path} is empty")
        return value
    if env:
        value = os.environ.get(env, "")
        if not value:
            raise SecretError(f"environment variable {env} is not set or empty")
        return value
    raise SecretError("no secret configured")
