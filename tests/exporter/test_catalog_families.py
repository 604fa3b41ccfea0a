"""Every catalog family is exposed once, with the catalog's name, type, help and exact label set."""
from __future__ import annotations

from collections import Counter

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporter.catalog import CATALOG, HISTOGRAM, RECEIVER, exposed_names
from exporter.exposition import render
from exporter.families import family_name
from exporter.host_collector import HostCollector
from exporter.telemetry import Telemetry
from tests.exporter.helpers import FakePsutil
from tests.exporter.fleet import record_every_family


def _parsed(text: str) -> dict:
    families = list(text_string_to_metric_families(text))
    names = Counter(family.name for family in families)
    assert [name for name, count in names.items() if count > 1] == [], "a family appears more than once"
    return {family.name: family for family in families}


@pytest.mark.parametrize("renderer", [render, generate_latest], ids=["render", "generate_latest"])
def test_every_family_matches_the_catalog(registry, telemetry, renderer):
    record_every_family(telemetry)
    families = _parsed(renderer(registry).decode())
    assert set(families) == {family_name(spec) for spec in CATALOG}
    for spec in CATALOG:
        family = families[family_name(spec)]
        assert family.type == spec.type
        assert family.documentation == spec.help
        assert family.samples, f"{spec.name} has no sample"
        for sample in family.samples:
            assert sample.name in spec.exposed_names
            expected_labels = set(spec.labels) | ({"le"} if sample.name.endswith("_bucket") else set())
            assert set(sample.labels) == expected_labels, sample


def test_exposed_sample_names_are_in_the_catalog(registry, telemetry):
    record_every_family(telemetry)
    sample_names = {sample.name for family in registry.collect() for sample in family.samples}
    assert sample_names <= exposed_names()
    # Everything but the receiver's own families, which dumont-receiver exposes (tests/receiver/test_ops.py).
    assert sample_names == exposed_names() - {name for spec in RECEIVER for name in spec.exposed_names}


def test_no_created_series(registry, telemetry):
    record_every_family(telemetry)
    assert "_created" not in render(registry).decode()
    assert "_created" not in generate_latest(registry).decode()


def test_fast_render_and_generate_latest_agree(registry):
    # The API refuses label values that need escaping (exporter.checks); a host collector's own labels
    # are the one way such a value reaches the render, which must still escape it as generate_latest does.
    odd = HostCollector(FakePsutil(), "odd\\id\"with\nescapes", "cpu")
    telemetry = Telemetry(registry=registry, host=odd)
    record_every_family(telemetry)

    def samples(text: str) -> set:
        return {(s.name, frozenset(s.labels.items()), s.value)
                for family in text_string_to_metric_families(text) for s in family.samples}

    assert samples(render(registry).decode()) == samples(generate_latest(registry).decode())


def test_host_and_api_share_families_once(registry):
    telemetry = Telemetry(registry=registry, host=HostCollector(FakePsutil(cpu=7.0), "host-1", "cpu"))
    telemetry.set_cpu_usage("gpu-1", "gpu", 80)
    telemetry.set_cpu_usage("host-1", "cpu", 99)  # the same series as the host reading: the reading wins
    families = _parsed(render(registry).decode())
    cpu = families["dumont_cpu_usage_percent"]
    assert sorted((s.labels["machine_id"], s.value) for s in cpu.samples) == [("gpu-1", 80.0), ("host-1", 7.0)]


def test_registering_the_host_collector_beside_telemetry_is_refused(registry, telemetry):
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        HostCollector(FakePsutil(), "host-1", "cpu", registry=registry)


def test_histogram_buckets_are_the_catalogs(registry, telemetry):
    telemetry.record_sync(machine_id="gpu-1", latency_seconds=0.3)
    spec = next(spec for spec in CATALOG if spec.type == HISTOGRAM)
    buckets = [s for family in registry.collect() for s in family.samples if s.name.endswith("_bucket")]
    assert [float(s.labels["le"]) for s in buckets] == [*spec.buckets, float("inf")]
