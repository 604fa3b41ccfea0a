"""The production files agree with what generated/prod names: every file a service reads is mounted into it,
every host it talks to is a compose service, and the images are versions the generated config supports."""
from __future__ import annotations

import re
import tomllib
from pathlib import PurePosixPath

import pytest
import yaml

from deploy.local.stack import REPO_ROOT

COMPOSE_DIR = REPO_ROOT / "deploy" / "compose"
PROD = REPO_ROOT / "generated" / "prod"


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


def test_official_images_are_versions_the_generated_config_supports(compose):
    images = {name: service["image"] for name, service in compose["services"].items()}
    assert images["prometheus"].startswith("prom/prometheus:")
    assert version(images["prometheus"].split(":")[1]) >= (2, 42, 0)
    assert images["alertmanager"].startswith("prom/alertmanager:")
    assert version(images["alertmanager"].split(":")[1]) >= (0, 25, 0)


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
    am_config = re.search(r"--config.file=(\S+)", " ".join(services["alertmanager"]["command"])).group(1)
    assert host_path(services["alertmanager"], am_config) == (PROD / "alertmanager" / "alertmanager.yml").resolve()


def test_every_secret_file_named_in_generated_prod_is_mounted_into_its_reader(compose):
    services = compose["services"]
    am_text = (PROD / "alertmanager" / "alertmanager.yml").read_text()
    for secret in re.findall(r"credentials_file: (\S+)", am_text):
        assert host_path(services["alertmanager"], secret) == (COMPOSE_DIR / "secrets" / PurePosixPath(secret).name)

    receiver_config = load(COMPOSE_DIR / "receiver.yml")
    assert host_path(services["receiver"], receiver_config["channels_file"]) == \
        (PROD / "receiver" / "channels.yml").resolve()
    channels = load(PROD / "receiver" / "channels.yml")["channels"]
    secret_paths = [receiver_config["token_file"], receiver_config["history_token_file"]]
    secret_paths += [value for channel in channels.values() for key, value in channel.items() if key.endswith("_file")]
    for secret in secret_paths:
        assert host_path(services["receiver"], secret) == (COMPOSE_DIR / "secrets" / PurePosixPath(secret).name), \
            f"the receiver reads {secret}, which no bind mount of deploy/compose/secrets provides"


def test_generated_prod_talks_to_compose_service_names(compose):
    services = set(compose["services"])
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
