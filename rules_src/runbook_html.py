"""The runbooks as HTML fragments, which the receiver serves inside its own pages at /runbooks/<Alert>."""
from __future__ import annotations

import re

import jinja2
from markupsafe import Markup, escape

# Autoescape: every text from the spec (a step may quote `ps aux | head > x`) is shown, never interpreted.
_TEMPLATES = jinja2.Environment(loader=jinja2.PackageLoader("rules_src", "templates"), autoescape=True,
                                undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                                trim_blocks=True, lstrip_blocks=True)
_CODE_SPAN = re.compile(r"`([^`]+)`")


def code_spans(text: str) -> Markup:
    """`text` escaped, with its Markdown `code` spans as <code> (the Markdown pages show them so too)."""
    return Markup(_CODE_SPAN.sub(lambda m: f"<code>{m.group(1)}</code>", str(escape(text))))


_TEMPLATES.filters["code_spans"] = code_spans


def html_pages(spec, rows: list[dict], rules_of) -> dict[str, str]:
    """runbooks/index.html and runbooks/<Alert>.html from the Markdown pages' rows; `rules_of(alert)`: its rules."""
    files = {"runbooks/index.html": _TEMPLATES.get_template("index.html.j2").render(spec=spec, rows=rows)}
    for alert, row in zip(spec.alerts, rows):
        files[f"runbooks/{alert.name}.html"] = _TEMPLATES.get_template("alert.html.j2").render(
            spec=spec, alert=alert, row=row, rules=rules_of(alert))
    return files
