"""Render a Message as an email: a plain-text and an HTML part with the same content as Slack's."""
from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from html import escape

from . import drill_mark
from . import formatting as fmt
from .model import AlertEvent, Message

# A mail with every detail that is larger than this (or than the server's SIZE) becomes a summary that links
# to the history: a batch of ordinary alerts is a few KB; only giant annotations get near it.
MAX_EMAIL_BYTES = 1 << 20
TOO_LARGE = "Too many details for one email"


def build_email(message: Message, sender: str, to: list[str], max_bytes: int = MAX_EMAIL_BYTES) -> EmailMessage:
    """A multipart/alternative email for `message`; a digest, or details over `max_bytes`, become a summary."""
    if not message.digest:
        mail = _envelope(message, sender, to)
        mail.set_content(fmt.printable(_detail_text(message)))
        mail.add_alternative(fmt.printable(_detail_html(message)), subtype="html")
        if len(mail.as_bytes(policy=policy.SMTP)) <= max_bytes:  # as sent: CRLF line ends
            return mail
    title = "Alert storm" if message.digest else TOO_LARGE
    mail = _envelope(message, sender, to)
    # printable(): a lone surrogate stored before ingest refused them would fail every attempt to encode the mail.
    mail.set_content(fmt.printable(_summary_text(message, title)))
    mail.add_alternative(fmt.printable(_summary_html(message, title)), subtype="html")
    return mail


def _url_text(url: str) -> str:
    """A URL in the plain-text part: as it is when it is a web link, else shown so no mail client links it."""
    return url if fmt.web_url(url) else fmt.shown_url(url)


def _envelope(message: Message, sender: str, to: list[str]) -> EmailMessage:
    mail = EmailMessage()
    mail["Subject"] = fmt.printable(drill_mark.headline(message))
    mail["From"] = sender
    mail["To"] = ", ".join(to)
    mail["Date"] = formatdate(usegmt=True)
    mail["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    return mail


def _left_out(message: Message) -> list[str]:
    """The plain-text lines about alerts cut from the posts (by Alertmanager or the receiver), if any were."""
    return [fmt.left_out_line(message), ""] if message.left_out else []


_LINKS = ("Runbook", "Source")  # the facts that are URLs: links in the HTML part when they are web links


def _facts(event: AlertEvent) -> list[tuple[str, str]]:
    """(label, value) lines both parts show for one alert."""
    facts = [("Machine", fmt.machine(event)), ("Value", event.annotations.get("value", ""))]
    facts.append(("Description", event.annotations.get("description", "")))
    facts.append(("Started", event.starts_at))
    if event.status == "resolved":
        facts.append(("Resolved", event.ends_at or ""))
    facts.append(("Runbook", event.annotations.get("runbook_url", "")))
    facts.append(("Source", event.generator_url))
    return [(label, _url_text(value) if label in _LINKS else value) for label, value in facts if value]


def _state(event: AlertEvent) -> str:
    return drill_mark.state(event)  # FIRING or RESOLVED, then DRILL for a drill's alert


def _detail_text(message: Message) -> str:
    parts = [drill_mark.headline(message), ""] + _left_out(message)
    for event in message.events:
        parts.append(f"{_state(event)} · {fmt.alertname(event)} · {fmt.severity(event)}")
        parts.append(fmt.summary_text(event))
        parts += [f"{label}: {value}" for label, value in _facts(event)]
        parts.append("")
    parts.append(f"History: {_url_text(message.history_url)}")
    return "\n".join(parts) + "\n"


def _summary_text(message: Message, title: str) -> str:
    s = fmt.summary_of(message)
    counts = f"{title}: {fmt.count(s.total, 'alert')} ({s.firing} firing, {s.resolved} resolved)"
    parts = [drill_mark.headline(message), ""] + _left_out(message) + [counts, ""]
    parts += ["By alert:"] + [f"  - {fmt.group_line(g)}" for g in s.groups]
    if s.hidden_groups:
        parts.append(f"  - ... and {s.hidden_groups} more alert names")
    parts += ["", "Examples:"] + [f"  - {drill_mark.example(e)}" for e in s.examples]
    parts += ["", f"Every alert, in full: {_url_text(message.history_url)}"]
    return "\n".join(parts) + "\n"


_PAGE = (
    '<!doctype html><html><body style="font-family:Helvetica,Arial,sans-serif;font-size:14px;color:#1d1c1d">'
    "<h2 style=\"font-size:18px\">{title}</h2>{left_out}{body}"
    "<p>{history}</p></body></html>"
)


def _page(message: Message, body: str) -> str:
    left_out = f"<p><i>{escape(fmt.left_out_line(message))}</i></p>" if message.left_out else ""
    return _PAGE.format(title=escape(drill_mark.headline(message)), left_out=left_out, body=body,
                        history=_link_html(message.history_url, "Alert history"))


def _link_html(url: str, text: str) -> str:
    """An <a> to `url` when it is an http(s) URL; otherwise `text` and the URL as shown text, never a link."""
    if fmt.web_url(url):
        return f'<a href="{escape(url)}">{escape(text)}</a>'
    return f"{escape(text)}: {escape(fmt.shown_url(url))}"


def _value_html(label: str, value: str) -> str:
    # `value` is already _url_text()'s: a URL that is no web link arrives as shown text and stays text.
    if label in _LINKS and fmt.web_url(value):
        return f'<a href="{escape(value)}">{escape(value)}</a>'
    return escape(value)


def _event_html(event: AlertEvent) -> str:
    colour = fmt.colour(event)
    rows = "".join(
        f'<tr><td style="color:#616061;padding-right:12px;vertical-align:top">{label}</td>'
        f"<td>{_value_html(label, value)}</td></tr>"
        for label, value in _facts(event)
    )
    return (
        f'<div style="border-left:6px solid {colour};padding:4px 12px;margin:12px 0">'
        f'<div><span style="background:{colour};color:#fff;padding:1px 6px;border-radius:3px">{_state(event)}</span> '
        f"<b>{escape(fmt.alertname(event))}</b> · {escape(fmt.severity(event))}</div>"
        f"<p style=\"margin:6px 0\"><b>{escape(fmt.summary_text(event))}</b></p><table>{rows}</table></div>"
    )


def _detail_html(message: Message) -> str:
    body = "".join(_event_html(e) for e in message.events)
    return _page(message, body)


def _summary_html(message: Message, title: str) -> str:
    s = fmt.summary_of(message)
    groups = "".join(f"<li>{escape(fmt.group_line(g))}</li>" for g in s.groups)
    if s.hidden_groups:
        groups += f"<li>… and {s.hidden_groups} more alert names</li>"
    examples = "".join(
        f'<li><span style="color:{fmt.colour(e)}">■</span> {escape(drill_mark.example(e))}</li>' for e in s.examples
    )
    body = (
        f'<div style="border-left:6px solid {fmt.colour_of(s)};padding:4px 12px">'
        f"<p><b>{title}: {fmt.count(s.total, 'alert')}</b> ({s.firing} firing, {s.resolved} resolved)</p>"
        f"<p>By alert:</p><ul>{groups}</ul><p>Examples:</p><ul>{examples}</ul></div>"
    )
    return _page(message, body)
