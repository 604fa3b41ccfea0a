"""The one way generated YAML is written."""
from __future__ import annotations

import yaml


def dump(data) -> str:
    """Deterministic YAML: sorted keys, block style, no line folding."""
    return yaml.safe_dump(data, sort_keys=True, default_flow_style=False, width=1_000_000, allow_unicode=True)
