"""The production files agree with what generated/prod names: every file a service reads is mounted into it,
every host it talks to is a compose service, the HA pair peers and the receivers share PostgreSQL, no secret
is written in any file, and the images are versions the generated config supports."""
from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import PurePosixPath
from urllib.parse import urlsplit

import pytest
import yaml

from deploy.local.stack import REPO_ROOT, tool
from webhook_receiver.config import load_config

COMPOSE_DIR = REPO_ROOT / "deploy" / "compose"
SYSTEMD_DIR = REPO_ROOT / "deploy" / "systemd"
PROD = REPO_ROOT / "generated" / "prod"
ALERTMANAGERS = ["alertmanager-1", "alertmanager-2"]
RECEIVERS = ["receiver-1", "receiver-2"]


def load(path):
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict:
    return load(COMPOSE_DIR / "compose.yml")


def mounts(service: dict) -> dict[str, str]:
    """container path -> host path (relative to deploy/compose) of a service's bind mounts."""
    pairs = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            pairs[target] = source
    return pairs


def host_path(service: dict, container_path: str):
    """Where a file a container reads comes from on the host, or None if no bind mount covers it."""
    for target, source in mounts(service).items():
        path = PurePosixPath(container_path)
        if path == PurePosixPath(target) or PurePosixPath(target) in path.parents:
            return (COMPOSE_DIR / source / path.relative_to(target)).resolve()
    return None


def version(tag: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", tag)[:3])


def command_flags(service: dict) -> dict[str, str]:
    """--flag=value pairs of a service's command."""
    return dict(arg[2:].split("=", 1) for arg in service.get("command", []) if arg.startswith("--") and "=" in arg)


def generated_hosts() -> tuple[set[str], set[str]]:
    """The hosts generated/prod sends alerts to (Alertmanagers) and posts notifications to (receivers)."""
    prometheus = load(PROD / "prometheus" / "prometheus.yml")
    alertmanagers = {t.split(":")[0] for am in prometheus["alerting"]["alertmanagers"]
                     for group in am["static_configs"] for t in group["targets"]}
    receivers = set(re.findall(r"url: http://([^:/]+)", (PROD / "alertmanager" / "alertmanager.yml").read_text()))
    return alertmanagers, receivers


def test_official_images_are_versions_the_generated_config_supports(compose):
    images = {name: service["image"] for name, service in compose["services"].items()}
    assert images["prometheus"].startswith("prom/prometheus:")
    assert version(images["prometheus"].split(":")[1]) >= (2, 42, 0)
    for name in ALERTMANAGERS:
        assert images[name].startswith("prom/alertmanager:")
        # 0.25: api_url_file and auth_password_file, which the direct route around the receivers needs
        assert version(images[name].split(":")[1]) >= (0, 25, 0)
    assert re.fullmatch(r"postgres:\d+(\.\d+)?", images["postgres"]), "the official image, a pinned major"


def test_the_default_services_are_the_ha_shape_generated_prod_talks_to(compose):
    alertmanagers, receivers = generated_hosts()
    assert sorted(alertmanagers) == ALERTMANAGERS and sorted(receivers) == RECEIVERS
    assert sorted(compose["services"]) == sorted(["postgres", "prometheus", "exporter", *ALERTMANAGERS, *RECEIVERS])
    assert not any("profiles" in service for service in compose["services"].values()), \
        "every service starts by default: generated/prod needs all of them"


def test_every_published_port_is_on_the_hosts_loopback_only(compose):
    published = [(name, port) for name, service in compose["services"].items() for port in service.get("ports", [])]
    assert published
    for name, port in published:
        assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond the host's loopback"
    assert "ports" not in compose["services"]["postgres"]


def test_the_two_alertmanagers_peer_with_each_other(compose):
    services = compose["services"]
    for name, other in (ALERTMANAGERS, ALERTMANAGERS[::-1]):
        flags = command_flags(services[name])
        listen_port = flags["cluster.listen-address"].rpartition(":")[2]
        assert flags["cluster.listen-address"] == f"0.0.0.0:{listen_port}", f"{name} must gossip (clustering on)"
        peer_host, _, peer_port = flags["cluster.peer"].rpartition(":")
        assert peer_host == other, f"{name} peers with {peer_host}, not {other}"
        assert peer_port == command_flags(services[other])["cluster.listen-address"].rpartition(":")[2]
        assert flags["storage.path"] in "".join(services[name]["volumes"])
    volumes = [{v for v in services[name]["volumes"] if v.endswith(":/alertmanager")} for name in ALERTMANAGERS]
    assert volumes[0] and volumes[0] != volumes[1], "each Alertmanager keeps its own state"


def test_both_receivers_point_at_the_postgres_service(compose):
    services = compose["services"]
    config = load(COMPOSE_DIR / "receiver.yml")
    url = urlsplit(config["database"])
    postgres = services["postgres"]
    assert url.scheme == "postgresql" and url.hostname == "postgres" and url.password is None
    assert url.username == postgres["environment"]["POSTGRES_USER"]
    assert url.path.lstrip("/") == postgres["environment"]["POSTGRES_DB"]
    assert (url.port or 5432) == 5432
    for name in RECEIVERS:
        receiver = services[name]
        assert receiver["command"][:2] == ["dumont-receiver", "serve"]
        config_path = receiver["command"][receiver["command"].index("--config") + 1]
        assert host_path(receiver, config_path) == (COMPOSE_DIR / "receiver.yml").resolve()
        assert receiver["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert postgres["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    # The password the receivers read is the one the image set: the same file of deploy/compose/secrets.
    secret = postgres["environment"]["POSTGRES_PASSWORD_FILE"]
    assert PurePosixPath(secret).parent == PurePosixPath("/run/secrets")
    assert PurePosixPath(secret).name in postgres["secrets"]
    source = compose["secrets"][PurePosixPath(secret).name]["file"]
    for name in RECEIVERS:
        assert host_path(services[name], config["database_password_file"]) == (COMPOSE_DIR / source).resolve()


def test_repository_mounts_exist_and_hold_what_each_service_loads(compose):
    services = compose["services"]
    for name, service in services.items():
        for source in mounts(service).values():
            if not source.endswith("secrets"):  # created by the operator, never committed
                assert (COMPOSE_DIR / source).exists(), f"{name} mounts {source}, which does not exist"
    prometheus_cmd = " ".join(services["prometheus"]["command"])
    config = re.search(r"--config.file=(\S+)", prometheus_cmd).group(1)
    assert host_path(services["prometheus"], config) == (PROD / "prometheus" / "prometheus.yml").resolve()
    for rule_glob in load(PROD / "prometheus" / "prometheus.yml")["rule_files"]:
        assert list((PROD / "prometheus").glob(rule_glob)), f"rule_files {rule_glob} matches nothing"
    for name in ALERTMANAGERS:
        am_config = command_flags(services[name])["config.file"]
        assert host_path(services[name], am_config) == (PROD / "alertmanager" / "alertmanager.yml").resolve()


def test_every_secret_file_named_in_generated_prod_is_mounted_into_its_reader(compose):
    services = compose["services"]
    am_text = (PROD / "alertmanager" / "alertmanager.yml").read_text()
    # The webhook token, and the direct route's Slack URL and SMTP password (around the receivers).
    am_secrets = re.findall(r"(?:credentials_file|api_url_file|auth_password_file): (\S+)", am_text)
    assert {PurePosixPath(s).name for s in am_secrets} >= {"receiver_token", "slack_oncall_url", "smtp_password"}
    for name in ALERTMANAGERS:
        for secret in am_secrets:
            assert host_path(services[name], secret) == (COMPOSE_DIR / "secrets" / PurePosixPath(secret).name), \
                f"{name} reads {secret}, which no bind mount of deploy/compose/secrets provides"

    receiver_config = load(COMPOSE_DIR / "receiver.yml")
    channels = load(PROD / "receiver" / "channels.yml")["channels"]
    secret_paths = [receiver_config["token_file"], receiver_config["history_token_file"],
                    receiver_config["database_password_file"]]
    secret_paths += [value for channel in channels.values() for key, value in channel.items() if key.endswith("_file")]
    for name in RECEIVERS:
        assert host_path(services[name], receiver_config["channels_file"]) == \
            (PROD / "receiver" / "channels.yml").resolve()
        for secret in secret_paths:
            assert host_path(services[name], secret) == (COMPOSE_DIR / "secrets" / PurePosixPath(secret).name), \
                f"{name} reads {secret}, which no bind mount of deploy/compose/secrets provides"


# What a secret written into a file looks like: a password in a URL, a Slack webhook, a key that holds one.
SECRET_PATTERNS = [
    (re.compile(r"://[^/\s:@]+:[^/\s@]+@"), "a password inside a URL"),
    (re.compile(r"hooks\.slack\.com/services/\w"), "a Slack webhook URL"),
    (re.compile(r"^\s*-?\s*(api_url|auth_password|password|credentials|bearer_token|database_password|"
                r"heartbeat_url|POSTGRES_PASSWORD)[ \t]*[:=][ \t]*[^\s{#]", re.M | re.I),
     "a secret's value under its key"),  # a key opening a mapping (compose's `secrets:` entries) is fine
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "a private key"),
]


def deploy_files() -> list:
    """Every file an operator installs: compose, systemd, the image, and what generated/prod renders."""
    files = [*COMPOSE_DIR.glob("*.yml"), *SYSTEMD_DIR.iterdir(), REPO_ROOT / "deploy" / "container" / "Dockerfile"]
    files += [path for path in PROD.rglob("*") if path.is_file() and path.suffix in (".yml", ".yaml")]
    return sorted(path for path in files if path.is_file())


@pytest.mark.parametrize("path", deploy_files(), ids=lambda path: str(path.relative_to(REPO_ROOT)))
def test_no_secret_is_written_in_any_deploy_file(path):
    text = path.read_text()
    for pattern, what in SECRET_PATTERNS:
        found = pattern.search(text)
        assert found is None, f"{path.relative_to(REPO_ROOT)} holds {what}: {found.group(0)!r}"


def test_the_secret_patterns_catch_what_they_are_for():
    samples = ["database: postgresql://dumont:hunter2@postgres/dumont", "POSTGRES_PASSWORD: hunter2",
               "  - POSTGRES_PASSWORD=hunter2", "api_url: https://hooks.slack.com/services/T0/B0/x",
               "  auth_password: hunter2", "database_password: hunter2"]
    for sample in samples:
        assert any(pattern.search(sample) for pattern, _ in SECRET_PATTERNS), sample
    for fine in ["POSTGRES_PASSWORD_FILE: /run/secrets/database_password", "auth_password_file: /etc/x",
                 "database_password_file: /etc/dumont/secrets/database_password", "credentials_file: /etc/x",
                 "secrets:\n  database_password:\n    file: ./secrets/database_password"]:
        assert not any(pattern.search(fine) for pattern, _ in SECRET_PATTERNS), fine


def test_generated_prod_talks_to_compose_service_names(compose):
    services = set(compose["services"])  # two Alertmanagers and two receivers listed: every one is a service
    prometheus = load(PROD / "prometheus" / "prometheus.yml")
    targets = [t for job in prometheus["scrape_configs"] for group in job["static_configs"] for t in group["targets"]]
    targets += [t for am in prometheus["alerting"]["alertmanagers"] for group in am["static_configs"]
                for t in group["targets"]]
    hosts = {target.split(":")[0] for target in targets}
    assert hosts and hosts <= services
    urls = re.findall(r"url: http://([^:/]+)", (PROD / "alertmanager" / "alertmanager.yml").read_text())
    assert urls and set(urls) <= services


def test_the_image_and_the_units_run_the_projects_own_commands():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    dockerfile = (REPO_ROOT / "deploy" / "container" / "Dockerfile").read_text()
    for package in ("exporter", "rules_src", "webhook_receiver"):
        assert f"COPY {package} ./{package}" in dockerfile
    units = sorted((REPO_ROOT / "deploy" / "systemd").glob("*.service"))
    assert units
    for unit in units:
        for command in re.findall(r"^Exec\w+=\S*/venv/bin/(\S+)", unit.read_text(), re.M):
            assert command in project["scripts"], f"{unit.name} runs {command}, which pyproject does not install"
    for default in (REPO_ROOT / "deploy" / "systemd").glob("*.default"):
        config = re.search(r"--config.file=/etc/dumont/rendered/(\S+)", default.read_text()).group(1)
        assert (REPO_ROOT / "generated" / config).exists(), f"{default.name} loads {config}, which is never rendered"


def test_the_systemd_host_keeps_the_receiver_on_loopback_and_reads_the_rendered_channels():
    config = load(REPO_ROOT / "deploy" / "systemd" / "receiver.yml")
    assert config["listen"].startswith("127.0.0.1:")
    rendered = PurePosixPath(config["channels_file"]).relative_to("/etc/dumont/rendered")
    assert (REPO_ROOT / "generated" / rendered).exists()
    unit = (REPO_ROOT / "deploy" / "systemd" / "dumont-receiver.service").read_text()
    assert "--config /etc/dumont/receiver.yml" in unit


def test_the_two_host_files_render_the_pair_and_peer_across_hosts(tmp_path):
    overlay = load(SYSTEMD_DIR / "ha-overlay.yml")["endpoints"]
    assert len(overlay["alertmanager"]) == len(overlay["receiver"]) == 2
    render = subprocess.run([tool("dumont-rules"), "generate", "--env", "prod", "--out", str(tmp_path),
                             "--overlay", str(SYSTEMD_DIR / "ha-overlay.yml")], capture_output=True, text=True)
    assert render.returncode == 0, render.stderr
    prometheus = load(tmp_path / "prod" / "prometheus" / "prometheus.yml")
    assert prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == overlay["alertmanager"]
    urls = re.findall(r"url: http://(\S+)/webhook/slack-oncall", (tmp_path / "prod" / "alertmanager" /
                                                                  "alertmanager.yml").read_text())
    assert urls == overlay["receiver"]

    # alert-a's Alertmanager gossips on its own address and peers with the other Alertmanager of the overlay.
    args = dict(arg[2:].split("=", 1) for arg in re.search(
        r'ARGS="([^"]*)"', (SYSTEMD_DIR / "prometheus-alertmanager-ha.default").read_text()).group(1).split())
    host_a, host_b = (endpoint.rpartition(":")[0] for endpoint in overlay["alertmanager"])
    assert args["cluster.peer"] == f"{host_b}:9094"
    assert args["cluster.listen-address"].rpartition(":")[0] == args["web.listen-address"].rpartition(":")[0]
    assert args["cluster.listen-address"].endswith(":9094")

    receiver = load(SYSTEMD_DIR / "receiver-ha.yml")
    url = urlsplit(receiver["database"])
    assert url.scheme == "postgresql" and url.password is None and receiver["database_password_file"]
    assert receiver["listen"].rpartition(":")[0] == args["web.listen-address"].rpartition(":")[0]
    rendered = PurePosixPath(receiver["channels_file"]).relative_to("/etc/dumont/rendered")
    assert (tmp_path / rendered).exists()
    # The receiver accepts both files as they are.
    assert load_config(SYSTEMD_DIR / "receiver-ha.yml", env={}).database == receiver["database"]
    assert load_config(COMPOSE_DIR / "receiver.yml", env={}).database_password_file


def test_the_receivers_serve_the_runbooks_generated_prod_links_to(compose):
    services = compose["services"]
    config = load(COMPOSE_DIR / "receiver.yml")
    for name in RECEIVERS:
        assert host_path(services[name], config["runbooks_dir"]) == (PROD / "runbooks").resolve()
    for name in ("receiver.yml", "receiver-ha.yml"):
        rendered = PurePosixPath(load(SYSTEMD_DIR / name)["runbooks_dir"]).relative_to("/etc/dumont/rendered")
        assert (REPO_ROOT / "generated" / rendered / "index.html").is_file(), name
    # The links point where compose publishes receiver-1 (its external_url unless RECEIVER_EXTERNAL_URL is set).
    published = re.fullmatch(r"\$\{RECEIVER_EXTERNAL_URL:-(\S+)\}",
                             services["receiver-1"]["environment"]["DUMONT_RECEIVER_EXTERNAL_URL"]).group(1)
    rules = "".join(path.read_text() for path in (PROD / "prometheus" / "rules").glob("*.yml"))
    links = re.findall(r"runbook_url: (\S+)", rules)
    assert links and all(re.fullmatch(re.escape(published) + r"/runbooks/[A-Za-z][A-Za-z0-9_]*", url) for url in links)
    assert {url.rpartition("/")[2] + ".html" for url in links} <= {p.name for p in (PROD / "runbooks").iterdir()}
