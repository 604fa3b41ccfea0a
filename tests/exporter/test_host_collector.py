"""The psutil host collector: readings at scrape time, and a failed read drops only its own samples."""
from __future__ import annotations

import os

import psutil
import pytest

from exporter.host_collector import HOST_FAMILIES, HostCollector
from tests.exporter.helpers import FakePsutil

HOST = {"machine_type": "cpu", "machine_id": "host-1"}


def _collector(registry, **fake_options) -> FakePsutil:
    fake = FakePsutil(**fake_options)
    HostCollector(fake, machine_id="host-1", machine_type="cpu", registry=registry)
    return fake


def test_reads_cpu_memory_and_every_mount(registry):
    _collector(registry)
    assert registry.get_sample_value("dumont_cpu_usage_percent", HOST) == 12.5
    assert registry.get_sample_value("dumont_memory_usage_bytes", HOST) == 4e9  # total - available
    assert registry.get_sample_value("dumont_memory_total_bytes", HOST) == 16e9
    assert registry.get_sample_value("dumont_disk_usage_bytes", {**HOST, "mount": "/"}) == 40e9
    assert registry.get_sample_value("dumont_disk_total_bytes", {**HOST, "mount": "/"}) == 100e9
    assert registry.get_sample_value("dumont_disk_usage_bytes", {**HOST, "mount": "/data"}) == 450e9
    assert registry.get_sample_value("dumont_disk_total_bytes", {**HOST, "mount": "/data"}) == 500e9


def test_reads_happen_at_scrape_time(registry):
    fake = _collector(registry)
    fake.cpu = 99.0
    assert registry.get_sample_value("dumont_cpu_usage_percent", HOST) == 99.0


def test_registers_only_when_given_a_registry(registry):
    HostCollector(FakePsutil(), machine_id="host-1", machine_type="cpu")
    assert list(registry.collect()) == []


@pytest.mark.parametrize("error", [OSError("gone"), PermissionError("denied"), psutil.AccessDenied(1)])
def test_failed_mount_drops_only_that_mount(registry, error):
    _collector(registry, failing={"disk_usage:/data": error})
    assert registry.get_sample_value("dumont_disk_usage_bytes", {**HOST, "mount": "/data"}) is None
    assert registry.get_sample_value("dumont_disk_total_bytes", {**HOST, "mount": "/data"}) is None
    assert registry.get_sample_value("dumont_disk_usage_bytes", {**HOST, "mount": "/"}) == 40e9
    assert registry.get_sample_value("dumont_cpu_usage_percent", HOST) == 12.5


@pytest.mark.parametrize("error", [PermissionError("denied"), psutil.Error("psutil's own")])
def test_failed_cpu_read_drops_only_cpu(registry, error):
    _collector(registry, failing={"cpu_percent": error})
    assert registry.get_sample_value("dumont_cpu_usage_percent", HOST) is None
    assert registry.get_sample_value("dumont_memory_total_bytes", HOST) == 16e9
    assert registry.get_sample_value("dumont_disk_usage_bytes", {**HOST, "mount": "/"}) == 40e9


def test_failed_memory_read_drops_only_memory(registry):
    _collector(registry, failing={"virtual_memory": OSError("no /proc/meminfo")})
    assert registry.get_sample_value("dumont_memory_usage_bytes", HOST) is None
    assert registry.get_sample_value("dumont_memory_total_bytes", HOST) is None
    assert registry.get_sample_value("dumont_cpu_usage_percent", HOST) == 12.5


def test_failed_partition_listing_drops_only_disks(registry):
    _collector(registry, failing={"disk_partitions": OSError("no /proc/mounts")})
    families = {family.name: family for family in registry.collect()}
    assert set(families) == {spec.name for spec in HOST_FAMILIES}  # still every family, some empty
    assert families["dumont_disk_usage_bytes"].samples == []
    assert registry.get_sample_value("dumont_cpu_usage_percent", HOST) == 12.5


def test_real_psutil(registry):
    HostCollector(psutil, machine_id="host-1", machine_type="cpu", registry=registry)
    cpu = registry.get_sample_value("dumont_cpu_usage_percent", HOST)
    assert cpu is not None and 0 <= cpu <= 100
    assert registry.get_sample_value("dumont_memory_total_bytes", HOST) == psutil.virtual_memory().total
    mounts = {s.labels["mount"] for family in registry.collect() if family.name == "dumont_disk_total_bytes"
              for s in family.samples}
    readable = set()
    for partition in psutil.disk_partitions(all=False):
        if os.path.isfile(partition.mountpoint):
            continue  # a container's bind-mounted /etc/hosts and the like
        try:
            psutil.disk_usage(partition.mountpoint)
            readable.add(partition.mountpoint)
        except OSError:
            pass
    assert mounts == readable


def test_a_file_mounted_over_a_file_is_not_a_disk(registry, tmp_path):
    hosts = tmp_path / "hosts"  # what a container's bind-mounted /etc/hosts looks like to psutil
    hosts.write_text("127.0.0.1 localhost\n")
    usage = FakePsutil().mounts["/"]
    _collector(registry, mounts={"/": usage, str(hosts): usage})
    mounts = {s.labels["mount"] for family in registry.collect() if family.name == "dumont_disk_total_bytes"
              for s in family.samples}
    assert mounts == {"/"}
