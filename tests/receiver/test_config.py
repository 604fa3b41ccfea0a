"""receiver.yml and DUMONT_RECEIVER_* overrides; errors name the file and key."""
import pytest

from webhook_receiver.config import ConfigError, load_config, parse_duration


def write(tmp_path, text):
    path = tmp_path / "receiver.yml"
    path.write_text(text)
    return path


BASE = "database: /tmp/h.db\nchannels_file: c.yml\ntoken_file: t\n"


def test_file_defaults_and_env_overrides(tmp_path):
    path = write(tmp_path, BASE + "retention: 7d\nworkers: 3\n")
    config = load_config(path, env={"DUMONT_RECEIVER_DATABASE": "/tmp/other.db", "DUMONT_RECEIVER_WORKERS": "4",
                                    "DUMONT_RECEIVER_RELAY": "false", "DUMONT_RECEIVER_HISTORY_TOKEN_FILE": ""})
    assert config.database == "/tmp/other.db" and config.workers == 4 and config.relay is False
    assert config.retention == 7 * 86400 and config.listen == "127.0.0.1:9878"
    assert config.history_token_file is None and config.host_port == ("127.0.0.1", 9878)


@pytest.mark.parametrize("text, env, message", [
    (BASE + "retention: soon\n", {}, "receiver.yml: retention: expected a duration like 30s or 5m, got 'soon'"),
    (BASE + "workers: two\n", {}, "receiver.yml: workers: expected an integer, got 'two'"),
    (BASE + "wokers: 2\n", {}, "receiver.yml: wokers: unknown key"),
    ("channels_file: c.yml\ntoken_file: t\n", {}, "receiver.yml: database: required"),
    (BASE + "listen: localhost\n", {}, "receiver.yml: listen: expected host:port, got 'localhost'"),
    (BASE, {"DUMONT_RECEIVER_MAX_ATTEMPTS": "0"}, "environment DUMONT_RECEIVER_MAX_ATTEMPTS: must be greater than 0"),
    ("[1, 2]\n", {}, "receiver.yml: expected a mapping of keys, got list"),
    (BASE + "synchronous: off\n", {}, "receiver.yml: synchronous: expected one of normal, full, got False"),
    (BASE, {"DUMONT_RECEIVER_SYNCHRONOUS": "extra"},
     "environment DUMONT_RECEIVER_SYNCHRONOUS: expected one of normal, full, got 'extra'"),
])
def test_errors_name_file_and_key(tmp_path, text, env, message):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), env=env)
    assert message in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="nope.yml: cannot read: No such file"):
        load_config(tmp_path / "nope.yml", env={})


def test_durations():
    assert parse_duration("30s") == 30 and parse_duration("5m") == 300 and parse_duration("1h30m") == 5400
    assert parse_duration("250ms") == 0.25 and parse_duration(12) == 12.0
    with pytest.raises(ValueError):
        parse_duration("5 minutes")
