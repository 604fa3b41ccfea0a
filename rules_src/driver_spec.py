"""Checks of an alert's `test` field, and the Driver the generated tests build their input series with."""
from __future__ import annotations

from exporter import catalog

from . import drivers, promql, units
from .model import Driver

KINDS = ("gauge", "ratio", "age", "histogram", "increase", "rate")
# Counter drivers make the value an increase (or per-second rate) over `window`.
COUNTERS = ("increase", "rate")


def driver(c, at: tuple, unit: str, carries: tuple[str, ...], local: dict) -> Driver | None:
    """The Driver of the alert at `at`; None (reported) when `test` cannot drive its value."""
    here = at + ("test",)
    spec = c.get(here, {})
    kinds = [k for k in KINDS if k in spec]
    if len(kinds) != 1:
        c.fail(here, "give exactly one of " + ", ".join(KINDS))
        return None
    kind = kinds[0]
    metrics = tuple(spec[kind]) if kind == "ratio" else (spec[kind],)
    normal = units.threshold_value("number" if unit == "ratio" else unit, spec["normal"])
    if normal is None:
        c.fail(here + ("normal",), units.UNIT_RULE[unit])
    # A counter is named as scraped (`_total`), the name its PromQL reads; other kinds by their family.
    families = [catalog.family_of(m) if kind in COUNTERS else catalog.BY_NAME.get(m) for m in metrics]
    # Only a catalog histogram has known buckets; other series outside the catalog (`up`) may be driven.
    unknown = [m for m, f in zip(metrics, families) if f is None and (m.startswith("dumont_") or kind == "histogram")]
    for metric in unknown:
        c.fail(here + (kind,), f"unknown metric {metric} (not in exporter.catalog)")
    histogram = families[0] if kind == "histogram" and families[0] is not None else None
    if histogram is not None and histogram.type != catalog.HISTOGRAM:
        c.fail(here + (kind,), f"{metrics[0]} is not a histogram")
        histogram = None
    if kind in COUNTERS and families[0] is not None and families[0].type != catalog.COUNTER:
        c.fail(here + (kind,), f"{metrics[0]} is not a counter")
    window = _window(c, here, spec, local) if kind in ("histogram",) + COUNTERS else 0.0
    if "quantile" in spec and kind != "histogram":
        c.fail(here + ("quantile",), "only a histogram test has a quantile")
    if kind == "histogram" and not 0 < spec.get("quantile", 0) < 1:
        c.fail(here + ("quantile",), "must be a number between 0 and 1, exclusive")
    if spec.get("vanishes") and kind != "age":
        c.fail(here + ("vanishes",), "only an age test can vanish (its value keeps growing once the series stops)")
    _carried_by(c, at, carries, kind, [f for f in families if f is not None])
    if normal is None or unknown:
        return None
    labels = families[0].labels if families[0] is not None else tuple(carries)
    result = Driver(kind, metrics, labels, normal, float(spec.get("quantile", 0.0)),
                    histogram.buckets if histogram is not None else (), window, bool(spec.get("vanishes")))
    reachable(c, here + ("normal",), result, unit, normal, around=False)
    return result


def _window(c, here: tuple, spec: dict, local: dict) -> float:
    if "window" not in spec:
        c.fail(here, "missing required field 'window' (the range the value reads, as in its PromQL)")
        return 0.0
    text, missing = promql.substitute(str(spec["window"]), local)
    for name in missing:
        c.fail(here + ("window",), f"unknown parameter ${{{name}}}")
    return c.duration(here + ("window",), text) if not missing else 0.0


def _carried_by(c, at: tuple, carries: tuple[str, ...], kind: str, families: list) -> None:
    """The generated tests give each carried label the value of a label of the series `test` drives."""
    for i, label in enumerate(carries):
        lacking = [f.name for f in families if label not in f.labels]
        if lacking:
            c.fail(at + ("carries", i), f"label {label} is not a label of {lacking[0]} (exporter.catalog), "
                                        f"which test.{kind} drives")


def reachable(c, where: tuple, drv: Driver | None, unit: str, value: float | None, around: bool = True) -> None:
    """Report `value` (`around`: one step either side of it) if the histogram driver cannot produce it."""
    # The generated tests put the firing and the silent value one step either side of a threshold.
    if drv is None or not drv.buckets or value is None:
        return
    step = units.step(value) if around else 0.0
    needed = sorted({value - step, value + step})
    if not all(drivers.reachable(drv.buckets, v) for v in needed):
        lo, hi = (units.humane(unit, b) for b in (drv.buckets[0], drv.buckets[-1]))
        shown = " and ".join(units.humane(unit, v) for v in needed)
        c.fail(where, f"the generated tests need {drv.metrics[0]} to give {shown}, but its buckets "
                      f"only give values above {lo} and up to {hi}")
