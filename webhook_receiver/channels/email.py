"""Deliver messages over SMTP, with STARTTLS and optional authentication."""
from __future__ import annotations

import smtplib
import ssl

from .email_format import MAX_EMAIL_BYTES, build_email
from .model import Message, SendResult
from .secrets import SecretError, read_secret


class EmailChannel:
    """An SMTP smarthost and a list of recipients; the password is read at every send."""

    type = "email"
    digests = True

    def __init__(
        self,
        name: str,
        *,
        to: list[str],
        sender: str,
        smarthost: tuple[str, int],
        require_tls: bool = True,
        username: str | None = None,
        password_file: str | None = None,
        password_env: str | None = None,
        ca_file: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.name = name
        self.to = list(to)
        self.sender = sender
        self.host, self.port = smarthost
        self.require_tls = require_tls
        self.username = username
        self.password_file = password_file
        self.password_env = password_env
        self.ca_file = ca_file
        self.timeout = timeout

    def send(self, message: Message) -> SendResult:
        """Mail `message` to every recipient; never raises for delivery problems."""
        try:
            context = self._tls_context() if self.require_tls else None
        except SecretError as exc:
            return SendResult(ok=False, permanent=True, detail=str(exc))
        try:
            # The timeout bounds the connect and every later socket operation
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                self._start_tls(smtp, context)
                self._login(smtp, secure=context is not None)
                mail = build_email(message, self.sender, self.to, max_bytes=_size_limit(smtp))
                refused = smtp.send_message(mail, from_addr=self.sender, to_addrs=self.to)
        except (_Refused, SecretError) as exc:
            return SendResult(ok=False, permanent=True, detail=str(exc))
        except smtplib.SMTPRecipientsRefused as exc:
            # A temporary refusal for anyone makes the whole send worth retrying
            code, text = min(exc.recipients.values())
            return _by_code(code, text)
        except smtplib.SMTPResponseException as exc:
            return _by_code(exc.smtp_code, exc.smtp_error)
        except smtplib.SMTPNotSupportedError as exc:
            return SendResult(ok=False, permanent=True, detail=f"SMTP server: {exc}")
        except ssl.SSLCertVerificationError as exc:
            return SendResult(ok=False, permanent=True, detail=f"TLS certificate rejected: {exc.verify_message}")
        except (OSError, smtplib.SMTPException) as exc:
            # Connection refused, reset, timed out, TLS handshake cut short: the server may come back
            return SendResult(ok=False, detail=f"SMTP connection failed: {getattr(exc, 'strerror', None) or exc}")
        if refused:
            # Some recipients took it; resending would duplicate it for them
            return SendResult(ok=True, detail=f"sent; refused by {', '.join(sorted(refused))}")
        return SendResult(ok=True, detail=f"sent to {len(self.to)} recipient(s)")

    def _tls_context(self) -> ssl.SSLContext:
        try:
            return ssl.create_default_context(cafile=self.ca_file)
        except (OSError, ssl.SSLError):
            raise SecretError(f"cannot load CA file {self.ca_file}") from None

    def _start_tls(self, smtp: smtplib.SMTP, context: ssl.SSLContext | None) -> None:
        if context is None:
            return
        smtp.ehlo()
        if not smtp.has_extn("starttls"):
            raise _Refused(f"{self.host}:{self.port} does not offer STARTTLS and require_tls is true")
        smtp.starttls(context=context)
        smtp.ehlo()

    def _login(self, smtp: smtplib.SMTP, secure: bool) -> None:
        smtp.ehlo_or_helo_if_needed()
        # Like Alertmanager: authenticate only when the server offers AUTH. The password is read
        # only then, so a local overlay pointing smarthost at a sink without AUTH needs no secret.
        if not (self.username and smtp.has_extn("auth")):
            return
        if not secure:
            raise _Refused("refusing to send SMTP credentials without TLS (set require_tls: true)")
        smtp.login(self.username, read_secret(self.password_file, self.password_env))


def _size_limit(smtp: smtplib.SMTP) -> int:
    """The largest mail to send: MAX_EMAIL_BYTES, or less when the server's SIZE (RFC 1870) says so."""
    advertised = smtp.esmtp_features.get("size", "").strip()
    # SIZE without a number, or 0, means no fixed limit
    return min(MAX_EMAIL_BYTES, int(advertised)) if advertised.isdigit() and int(advertised) else MAX_EMAIL_BYTES


class _Refused(Exception):
    """We decline to go on; retrying cannot help."""


def _by_code(code: int, text: bytes | str) -> SendResult:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    detail = f"SMTP {code} {' '.join(text.split())[:120]}".rstrip()
    return SendResult(ok=False, permanent=code >= 500, detail=detail)
