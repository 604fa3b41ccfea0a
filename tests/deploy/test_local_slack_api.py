"""The local stack and a Slack channel with a bot token: pointed at the stand-in's Web API, which checks the token."""
from __future__ import annotations

import subprocess
import sys
import time
from types import SimpleNamespace

import requests

from deploy.local import stack as stack_module
from deploy.local.processes import free_port, http_ok
from deploy.local.stack import REPO_ROOT, Ports, Stack


def test_a_bot_token_channel_is_pointed_at_the_stand_ins_web_api(tmp_path, monkeypatch):
    channels = {"slack-threads": {"type": "slack", "bot_token_env": "SLACK_BOT", "channel": "C0123456789"},
                "slack-oncall": {"type": "slack", "webhook_url_file": "/etc/dumont/secrets/slack_oncall_url"}}
    monkeypatch.setattr(stack_module, "load_spec", lambda env: (SimpleNamespace(channels=channels), []))
    ports = Ports.free()
    stack = Stack(tmp_path, ports=ports)
    (tmp_path / "secrets").mkdir()
    overrides = stack._channel_overrides()
    # bot_token_file replaces the base's bot_token_env when the overlay is merged (rules_src/loader.py)
    assert overrides["slack-threads"] == {"bot_token_file": str(tmp_path / "secrets" / "slack_bot_token"),
                                          "api_url": f"http://127.0.0.1:{ports.sink_http}/api"}
    assert set(overrides["slack-oncall"]) == {"webhook_url_file"}
    argv = stack.sinks_service().argv
    assert argv[argv.index("--slack-token-file") + 1] == str(tmp_path / "secrets" / "slack_bot_token")


def test_the_sinks_cli_serves_the_web_api_with_the_token_from_its_file(tmp_path):
    token = tmp_path / "slack_bot_token"
    token.write_text("xoxb-local-123\n")
    http = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "deploy.local.sinks", "--http", f"127.0.0.1:{http}",
                             "--smtp", f"127.0.0.1:{free_port()}", "--slack-token-file", str(token)],
                            cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{http}"
        deadline = time.monotonic() + 30
        while not http_ok(url + "/api/messages"):
            assert proc.poll() is None and time.monotonic() < deadline, "the sinks did not start"
            time.sleep(0.1)
        call = f"{url}/api/chat.postMessage"
        body = {"channel": "C0123456789", "text": "FIRING"}
        wrong = requests.post(call, json=body, headers={"Authorization": "Bearer xoxb-other"}, timeout=5).json()
        assert wrong == {"ok": False, "error": "invalid_auth"}
        first = requests.post(call, json=body, headers={"Authorization": "Bearer xoxb-local-123"}, timeout=5).json()
        reply = requests.post(call, json={**body, "text": "RESOLVED", "thread_ts": first["ts"]},
                              headers={"Authorization": "Bearer xoxb-local-123"}, timeout=5).json()
        assert first["ok"] and reply["ok"] and reply["message"]["thread_ts"] == first["ts"]
        posts = requests.get(url + "/api/messages", timeout=5).json()
        assert [(p["path"], p["body"]["text"]) for p in posts] == [("/api/chat.postMessage", "FIRING"),
                                                                   ("/api/chat.postMessage", "RESOLVED")]
    finally:
        proc.terminate()
        proc.wait(30)
