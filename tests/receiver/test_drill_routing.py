"""What the drill reads the routing to promise is what Alertmanager decides: checked against Debian's amtool
(`amtool config routes test`, Alertmanager 0.25's own route code) on every rendered environment and on a tree
with `continue`, nesting, regular expressions and legacy `match`/`match_re`; and the drill's input errors."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rules_src.amroute import load_routing, parse_matchers
from webhook_receiver.drill import ALERTNAME, DRILL_LABEL

REPO = Path(__file__).resolve().parents[2]
ENVIRONMENTS = sorted(p.name for p in (REPO / "generated").iterdir() if (p / "alertmanager").is_dir())
TREE = {
    "route": {"receiver": "root", "group_wait": "10s", "routes": [
        {"matchers": ['severity=~"crit.*"'], "receiver": "a", "continue": True},
        {"matchers": ['{team="x", severity!="info"}'], "receiver": "b", "group_interval": "1m",
         "routes": [{"match": {"severity": "page"}, "receiver": "c"}]},
        {"match_re": {"severity": "warn|info"}, "receiver": "d"},
    ]},
    "receivers": [{"name": name} for name in ("root", "a", "b", "c", "d")],
}
LABEL_SETS = [{"severity": "critical", "team": "x"}, {"severity": "page", "team": "x"},
              {"severity": "info", "team": "x"}, {"severity": "warn"}, {"severity": "critical"}, {"severity": "page"},
              {"team": "x"}, {}]


def amtool_receivers(config: Path, labels: dict[str, str]) -> list[str]:
    """The receivers amtool says an alert with `labels` reaches."""
    amtool = shutil.which("amtool")
    if amtool is None:  # fails, never skips: the check must run
        pytest.fail("amtool is not installed (run `make setup`, which installs Debian's prometheus-alertmanager)")
    done = subprocess.run([amtool, "config", "routes", "test", f"--config.file={config}",
                           *(f"{k}={v}" for k, v in labels.items())], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().split(",")


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_severity_of_every_environment_goes_where_amtool_says(env):
    generated = REPO / "generated" / env
    routing = load_routing(generated / "alertmanager" / "alertmanager.yml", generated / "receiver" / "channels.yml")
    assert routing.severities() == ["critical", "warning", "info"]
    for severity in routing.severities():
        labels = {"alertname": ALERTNAME, "severity": severity, DRILL_LABEL: "test"}
        promise = routing.promise(labels)
        assert list(promise.receivers) == amtool_receivers(generated / "alertmanager" / "alertmanager.yml", labels)
        channels = yaml.safe_load((generated / "receiver" / "channels.yml").read_text())["channels"]
        assert promise.channels and all(channels[c.name]["type"] == c.kind for c in promise.channels)
    # The route around the receiver (Alertmanager's own Slack and email) is known, to be said unfollowable.
    assert [route.receiver for route, _ in routing.around_routes()] == ["direct"]


def test_continue_nesting_regexes_and_legacy_matchers_as_alertmanager_walks_them(tmp_path):
    config = tmp_path / "alertmanager.yml"
    config.write_text(yaml.safe_dump(TREE))
    channels = tmp_path / "channels.yml"
    channels.write_text(yaml.safe_dump({"channels": {}}))
    routing = load_routing(config, channels)
    for labels in LABEL_SETS:
        assert list(routing.promise(labels).receivers) == amtool_receivers(config, labels), labels
    # Timings are inherited down the tree, and a drill waits for the slowest route it takes.
    promise = routing.promise({"severity": "critical", "team": "x"})
    assert (promise.group_wait, promise.group_interval) == (10.0, 300.0)  # route a keeps the default 5m
    assert routing.promise({"severity": "page", "team": "x"}).group_interval == 60.0  # c inherits b's


def test_matchers_are_parsed_as_alertmanager_parses_them():
    parsed = parse_matchers('{a="b,c", d=~"x|y", e!=f, g!~"h"}')
    assert [(m.name, m.op, m.value) for m in parsed] == [("a", "=", "b,c"), ("d", "=~", "x|y"), ("e", "!=", "f"),
                                                        ("g", "!~", "h")]
    [quoted] = parse_matchers(r'a="q\"u\\o\n"')
    assert quoted.value == 'q"u\\o\n'
    assert parsed[1].matches({"d": "x"}) and not parsed[1].matches({"d": "xy"})  # anchored, as Alertmanager's
    assert parsed[2].matches({}) and parsed[3].matches({})  # a missing label is ""
    with pytest.raises(ValueError, match="double quote"):
        parse_matchers('a="b"c"')


def test_the_drill_says_which_input_is_missing(tmp_path):
    drill = [str(Path(sys.executable).with_name("dumont-receiver")), "drill"]
    bare = subprocess.run(drill, capture_output=True, text=True, timeout=60)
    assert bare.returncode == 2 and "give --config receiver.yml or --generated" in bare.stderr
    generated = REPO / "generated" / "fast"
    unknown = subprocess.run([*drill, "--generated", str(generated), "--alertmanager", "http://127.0.0.1:9",
                              "--hop-timeout", "soon"], capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 2 and "--hop-timeout" in unknown.stderr
    secret = tmp_path / "history_token"
    secret.write_text("")
    empty = subprocess.run([*drill, "--generated", str(generated), "--history-token-file", str(secret)],
                           capture_output=True, text=True, timeout=60)
    assert empty.returncode == 2 and f"{secret} is empty" in empty.stderr
