"""The host's own CPU, memory and disks, read through psutil at scrape time."""
from __future__ import annotations

import logging
import os

import psutil
from prometheus_client.registry import CollectorRegistry

from exporter import checks
from exporter.catalog import BY_NAME
from exporter.families import CatalogFamily
from exporter.store import label_text

CPU = BY_NAME["dumont_cpu_usage_percent"]
MEMORY_USED = BY_NAME["dumont_memory_usage_bytes"]
MEMORY_TOTAL = BY_NAME["dumont_memory_total_bytes"]
DISK_USED = BY_NAME["dumont_disk_usage_bytes"]
DISK_TOTAL = BY_NAME["dumont_disk_total_bytes"]
HOST_FAMILIES = (CPU, MEMORY_USED, MEMORY_TOTAL, DISK_USED, DISK_TOTAL)

log = logging.getLogger(__name__)
# What one read may raise without failing the scrape: psutil's own errors are not OSErrors.
READ_ERRORS = (OSError, psutil.Error)


class HostCollector:
    """CPU, memory and every real mount of this host, read from a psutil-like object on each scrape.

    A failed read (OSError, psutil.Error) drops only the samples it would have produced.
    """

    def __init__(self, psutil_module, machine_id: str, machine_type: str,
                 registry: CollectorRegistry | None = None):
        self._psutil = psutil_module
        self._labels = {"machine_id": machine_id, "machine_type": machine_type}
        try:
            # cpu_percent(interval=None) compares with the previous call; the first call only primes it.
            self._psutil.cpu_percent(interval=None)
        except READ_ERRORS:
            pass
        if registry is not None:
            registry.register(self)

    def describe(self) -> list[CatalogFamily]:
        """The families this collector produces, without samples (for duplicate checks)."""
        return [CatalogFamily(spec) for spec in HOST_FAMILIES]

    def collect(self) -> list[CatalogFamily]:
        """Fresh families from one round of reads."""
        rows = self.read_rows()
        return [CatalogFamily(spec, rows[spec.name]) for spec in HOST_FAMILIES]

    def read_rows(self) -> dict[str, list[tuple]]:
        """Rows (label values, label text, value) per family name, from one round of reads."""
        rows: dict[str, list[tuple]] = {spec.name: [] for spec in HOST_FAMILIES}
        machine = tuple(self._labels[name] for name in CPU.labels)
        machine_text = label_text(CPU.labels, machine)
        try:
            rows[CPU.name].append((machine, machine_text, float(self._psutil.cpu_percent(interval=None))))
        except READ_ERRORS as error:
            log.debug("cpu read failed: %s", error)
        try:
            memory = self._psutil.virtual_memory()
            # total - available is what the system cannot hand out without swapping (psutil's percent).
            rows[MEMORY_USED.name].append((machine, machine_text, float(memory.total - memory.available)))
            rows[MEMORY_TOTAL.name].append((machine, machine_text, float(memory.total)))
        except READ_ERRORS as error:
            log.debug("memory read failed: %s", error)
        for mount in self._mountpoints():
            try:
                usage = self._psutil.disk_usage(mount)
            except READ_ERRORS as error:
                log.debug("disk read of %s failed: %s", mount, error)
                continue
            key = tuple({**self._labels, "mount": mount}[name] for name in DISK_USED.labels)
            text = label_text(DISK_USED.labels, key)
            rows[DISK_USED.name].append((key, text, float(usage.used)))
            rows[DISK_TOTAL.name].append((key, text, float(usage.total)))
        return rows

    def _mountpoints(self) -> list[str]:
        try:
            partitions = self._psutil.disk_partitions(all=False)
        except READ_ERRORS as error:
            log.debug("listing partitions failed: %s", error)
            return []
        # A device mounted twice at one place would give the same series twice, which is invalid. A file
        # bind-mounted over a file (a container's /etc/hosts, /etc/resolv.conf) is not a disk of its own.
        mounts = [mount for mount in dict.fromkeys(partition.mountpoint for partition in partitions)
                  if not os.path.isfile(mount)]
        return [mount for mount in mounts if _fits_label(mount)]


def _fits_label(mount: str) -> bool:
    """Whether a mount path can be a label value (checks.text); a longer one is skipped, not the whole scrape."""
    try:
        checks.text("mount", mount)
    except ValueError as error:
        log.debug("mount skipped: %s", error)
        return False
    return True
