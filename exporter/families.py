"""A catalog family as prometheus_client sees it, able to render itself as text without building Samples."""
from __future__ import annotations

from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from exporter.catalog import COUNTER, HISTOGRAM, MetricSpec
from exporter.store import bucket_bounds


def family_name(spec: MetricSpec) -> str:
    """The name prometheus_client gives the family: a counter's without `_total`, which it adds back."""
    if spec.type == COUNTER:
        return spec.exposed_names[0][: -len("_total")]
    return spec.name


class CatalogFamily(Metric):
    """One catalog family built from store rows; `samples` is built only when something asks for it.

    The exporter's own renderer calls `render_into` and never touches `samples`, which keeps a scrape
    of a large fleet cheap; generate_latest, OpenMetrics and `get_sample_value` read `samples` as usual.
    No `_created` samples: the catalog does not list them and Prometheus 2.42 does not read them.
    """

    def __init__(self, spec: MetricSpec, rows: list[tuple] | None = None):
        super().__init__(family_name(spec), spec.help, spec.type)
        self.spec = spec
        self.rows = rows if rows is not None else []
        # Metric.__init__ assigned an empty list through the property; mark samples as not built yet.
        self._samples = None

    @property
    def samples(self) -> list[Sample]:
        """The family's samples, built from its rows on first use."""
        if self._samples is None:
            self._samples = self._build_samples()
        return self._samples

    @samples.setter
    def samples(self, value: list[Sample]) -> None:
        self._samples = value

    def _build_samples(self) -> list[Sample]:
        labels = self.spec.labels
        if self.spec.type != HISTOGRAM:
            sample_name = self.spec.exposed_names[0]
            return [Sample(sample_name, dict(zip(labels, key)), value, None, None)
                    for key, _, value in self.rows]
        bucket_name, sum_name, count_name = self.spec.exposed_names
        bounds = bucket_bounds(self.spec)
        samples = []
        for key, _, cumulative, total in self.rows:
            base = dict(zip(labels, key))
            samples.extend(Sample(bucket_name, {**base, "le": bound}, count, None, None)
                           for bound, count in zip(bounds, cumulative))
            samples.append(Sample(count_name, base, cumulative[-1], None, None))
            samples.append(Sample(sum_name, base, total, None, None))
        return samples

    def render_into(self, out: list[str]) -> None:
        """Append this family in the Prometheus text format (0.0.4) to `out`."""
        exposed = self.spec.exposed_names
        help_text = self.documentation.replace("\\", r"\\").replace("\n", r"\n")
        header_name = exposed[0] if self.spec.type == COUNTER else self.name
        out.append(f"# HELP {header_name} {help_text}\n# TYPE {header_name} {self.type}\n")
        if self.spec.type != HISTOGRAM:
            name = exposed[0]
            out.extend([f"{name}{text} {floatToGoString(value)}\n" for _, text, value in self.rows])
            return
        bucket_name, sum_name, count_name = exposed
        le_parts = [f'le="{bound}"}}' for bound in bucket_bounds(self.spec)]
        for _, text, cumulative, total in self.rows:
            opening = text[:-1] + "," if text else "{"
            out.extend([f"{bucket_name}{opening}{le} {floatToGoString(count)}\n"
                        for le, count in zip(le_parts, cumulative)])
            out.append(f"{count_name}{text} {floatToGoString(cumulative[-1])}\n"
                       f"{sum_name}{text} {floatToGoString(total)}\n")
