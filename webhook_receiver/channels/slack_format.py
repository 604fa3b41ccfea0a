"""Render a Message as a Slack incoming-webhook payload: one coloured attachment per alert, or a summary."""
from __future__ import annotations

from typing import Any

from . import drill_mark
from . import formatting as fmt
from .model import AlertEvent, Message

# Slack: "more than 20 attachments is not recommended" (hard limit 100)
MAX_ATTACHMENTS = 20
# Slack: a section block's text holds at most 3000 characters
MAX_SECTION_CHARS = 3000
# Slack rejects messages whose blocks add up to roughly 13k characters (msg_blocks_too_long),
# well before the 40,000-character text truncation; stay under it with room for markup
MAX_TOTAL_CHARS = 12000


def escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as control characters (so `<!channel>` is text)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def link(url: str, label: str) -> str:
    """A mrkdwn link when `url` is an http(s) URL; any other is shown as text, never linked."""
    target = fmt.web_url(url)
    if target is None:
        return f"{escape(label)}: {escape(fmt.clip(fmt.shown_url(url)))}"
    # `|` ends the URL part of a link: a URL holding one would give the rest as the label.
    return f"<{escape(target.replace('|', '%7C'))}|{escape(label)}>"


def build_payload(message: Message, channel: str | None = None) -> dict[str, Any]:
    """The JSON body to post; a summary when the message is a digest or would not fit Slack's limits."""
    payload = None if message.digest else _detailed(message)
    if payload is None or not _fits(payload):
        payload = _summary(message)
    if channel:
        payload["channel"] = channel
    return _printable(payload)


def _printable(value: Any) -> Any:
    """`value` with every string printable (fmt.printable): Slack refuses JSON holding a lone surrogate."""
    if isinstance(value, str):
        return fmt.printable(value)
    if isinstance(value, dict):
        return {key: _printable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_printable(item) for item in value]
    return value


def _header(message: Message) -> str:
    header = f"*{escape(drill_mark.headline(message))}* · {link(message.history_url, 'History')}"
    return header + (f"\n_{escape(fmt.left_out_line(message))}_" if message.left_out else "")


def _detailed(message: Message) -> dict[str, Any]:
    return {"text": _header(message), "attachments": [_attachment(e) for e in message.events]}


def _attachment(event: AlertEvent) -> dict[str, Any]:
    state = drill_mark.state(event)  # FIRING or RESOLVED, then DRILL for a drill's alert
    lines = [
        f"*{state}* · *{escape(fmt.alertname(event))}* · {escape(fmt.severity(event))}",
        f"*{escape(fmt.summary_text(event))}*",
    ]
    if fmt.machine(event):
        lines.append(f"*Machine:* {escape(fmt.machine(event))}")
    if event.annotations.get("value"):
        lines.append(f"*Value:* {escape(event.annotations['value'])}")
    if event.annotations.get("description"):
        lines.append(escape(event.annotations["description"]))
    lines.append(f"*Started:* {escape(event.starts_at)}")
    if event.status == "resolved" and event.ends_at:
        lines.append(f"*Resolved:* {escape(event.ends_at)}")
    blocks: list[dict[str, Any]] = [_section("\n".join(lines))]
    links = [
        link(url, label)
        for url, label in ((event.annotations.get("runbook_url", ""), "Runbook"), (event.generator_url, "Source"))
        if url
    ]
    if links:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(links)}]})
    return {
        "color": fmt.colour(event),
        # Shown in notifications and by clients without blocks: Slack parses it like any text field.
        "fallback": escape(f"{state} {fmt.alertname(event)}: {fmt.summary_text(event)}"),
        "blocks": blocks,
    }


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _texts(payload: dict[str, Any]) -> list[str]:
    texts = [payload["text"]]
    for attachment in payload["attachments"]:
        texts.append(attachment["fallback"])
        for block in attachment["blocks"]:
            texts.extend(e["text"] for e in block.get("elements", ()))
            if "text" in block:
                texts.append(block["text"]["text"])
    return texts


def _fits(payload: dict[str, Any]) -> bool:
    sections = [b["text"]["text"] for a in payload["attachments"] for b in a["blocks"] if "text" in b]
    return (
        len(payload["attachments"]) <= MAX_ATTACHMENTS
        and all(len(t) <= MAX_SECTION_CHARS for t in sections)
        and sum(len(t) for t in _texts(payload)) <= MAX_TOTAL_CHARS
    )


def _summary(message: Message) -> dict[str, Any]:
    s = fmt.summary_of(message)
    title = "Alert storm" if message.digest else "Too many details for one Slack message"
    lines = [f"*{title}: {fmt.count(s.total, 'alert')}* ({s.firing} firing, {s.resolved} resolved)", "*By alert:*"]
    lines += [f"• {escape(fmt.group_line(g))}" for g in s.groups]
    if s.hidden_groups:
        lines.append(f"• _… and {s.hidden_groups} more alert names_")
    lines.append("*Examples:*")
    lines += [f"• {escape(drill_mark.example(e))}" for e in s.examples]
    lines.append(link(message.history_url, "Every alert, in full, in the alert history"))
    # GROUPS and EXAMPLES lines are clipped to LINE_CHARS, so this section stays under MAX_SECTION_CHARS
    return {
        "text": _header(message),
        "attachments": [
            {
                "color": fmt.colour_of(s),
                "fallback": escape(f"{title}: {fmt.count(s.total, 'alert')}"),
                "blocks": [_section("\n".join(lines))],
            }
        ],
    }
