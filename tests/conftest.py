"""Fixtures every test folder shares: the local Slack and SMTP stand-ins, each stopped even when a test fails."""
from __future__ import annotations

import pytest

from deploy.local.sinks import SlackSink, SmtpSink


@pytest.fixture
def slack():
    sink = SlackSink(port=0).start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
def smtp():
    sink = SmtpSink(port=0).start()
    try:
        yield sink
    finally:
        sink.stop()
