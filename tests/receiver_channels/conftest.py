"""Fixtures for the channel tests: real sinks on loopback, a test CA, and alert events."""
from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
from pathlib import Path

import pytest

from deploy.local.sinks import SlackSink, SmtpSink
from webhook_receiver.channels import RateLimiter, SlackChannel

from .helpers import SLACK_SECRET_PATH, SMTP_PASSWORD

@pytest.fixture
def slack_sink():
    with SlackSink() as sink:
        yield sink


@pytest.fixture
def slack_url_file(tmp_path, slack_sink) -> Path:
    path = tmp_path / "slack_url"
    path.write_text(slack_sink.url_for(SLACK_SECRET_PATH) + "\n")
    return path


@pytest.fixture
def slack(slack_url_file) -> SlackChannel:
    # No spacing between posts: the limiter's own tests cover spacing with a fake clock
    return SlackChannel("slack-oncall", webhook_url_file=str(slack_url_file), limiter=RateLimiter(interval=0))


@pytest.fixture
def refused_port():
    """A port bound but not listening: connecting to it is refused for as long as the test runs."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory) -> dict[str, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1, made with the openssl CLI."""
    openssl = shutil.which("openssl")
    # `make setup` installs Debian's openssl; a missing one must fail the run, never skip it.
    assert openssl is not None, "the openssl CLI is needed to make test certificates (run `make setup`)"
    d = tmp_path_factory.mktemp("ca")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=d, check=True, capture_output=True)

    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=dumont test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")
    return {"ca": d / "ca.pem", "cert": d / "server.pem", "key": d / "server.key"}


@pytest.fixture
def server_tls(test_ca) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(test_ca["cert"], test_ca["key"])
    return context


@pytest.fixture
def smtp_sink():
    """A plain SMTP server without TLS or AUTH."""
    with SmtpSink() as sink:
        yield sink


@pytest.fixture
def tls_smtp_sink(server_tls):
    """An SMTP server that requires STARTTLS, then AUTH as alerts / SMTP_PASSWORD."""
    with SmtpSink(tls_context=server_tls, auth=("alerts", SMTP_PASSWORD)) as sink:
        yield sink


@pytest.fixture
def password_file(tmp_path) -> Path:
    path = tmp_path / "smtp_password"
    path.write_text(SMTP_PASSWORD + "\n")
    return path
