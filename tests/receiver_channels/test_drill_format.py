"""A fire drill's alert (label dumont_drill) says DRILL first, in Slack and in email; a real alert batched with
one keeps its own headline, so a real page never reads as a drill."""
from __future__ import annotations

from dataclasses import replace

from webhook_receiver.channels import Message
from webhook_receiver.channels.email_format import build_email
from webhook_receiver.channels.formatting import summarize
from webhook_receiver.channels.slack_format import build_payload
from webhook_receiver.payload import DRILL_LABEL

from .helpers import HISTORY, event


def drill(status="firing", severity="critical"):
    real = event("DumontDrill", status=status, severity=severity, summary="Fire drill r1: nothing to do")
    return replace(real, labels={**real.labels, DRILL_LABEL: "r1"}, fingerprint=f"fp-drill-{status}")


def message(*events, digest=False):
    summary = summarize(events) if digest else None
    return Message("slack-oncall", list(events), HISTORY, digest=digest, summary=summary)


def test_a_drill_says_drill_in_the_slack_header_and_its_attachment():
    payload = build_payload(message(drill()))
    assert payload["text"].startswith("*[DRILL] [FIRING:1] DumontDrill (critical)*")
    [attachment] = payload["attachments"]
    assert attachment["blocks"][0]["text"]["text"].startswith("*FIRING · DRILL* · *DumontDrill* · critical")
    assert attachment["fallback"].startswith("FIRING · DRILL ")


def test_a_drill_says_drill_in_the_mail_subject_and_both_parts():
    mail = build_email(message(drill("resolved")), "alerts@dumont.cloud", ["oncall@example.com"])
    assert mail["Subject"] == "[DRILL] [RESOLVED] DumontDrill (critical)"
    text = mail.get_body(("plain",)).get_content()
    assert text.startswith("[DRILL] [RESOLVED] DumontDrill (critical)\n")
    assert "\nRESOLVED · DRILL · DumontDrill · critical\n" in text
    html = mail.get_body(("html",)).get_content()
    assert "[DRILL] [RESOLVED]" in html and "RESOLVED · DRILL" in html


def test_a_real_alert_batched_with_a_drill_keeps_its_headline():
    payload = build_payload(message(event(), drill()))
    assert payload["text"].startswith("*[FIRING:2] DiskAlmostFull, DumontDrill (critical) (includes a DRILL)*")
    real, drilled = payload["attachments"]
    assert "DRILL" not in real["blocks"][0]["text"]["text"] and "DRILL" in drilled["blocks"][0]["text"]["text"]
    mail = build_email(message(event(), drill()), "alerts@dumont.cloud", ["oncall@example.com"])
    assert not mail["Subject"].startswith("[DRILL]") and mail["Subject"].endswith("(includes a DRILL)")


def test_a_digest_is_a_drill_only_when_all_of_it_is_known_to_be():
    drills = [replace(drill(), fingerprint=f"fp-{i}") for i in range(3)]
    whole = build_payload(message(*drills, digest=True))
    assert whole["text"].startswith("*[DRILL] [FIRING:3] DumontDrill (critical)")
    assert "• DRILL FIRING gpu-1: Fire drill r1" in whole["attachments"][0]["blocks"][0]["text"]["text"]
    # A storm's digest carries only a few examples: with drills among them, the rest may be real.
    storm = message(*drills, digest=True)
    storm = replace(storm, summary=replace(storm.summary, total=50, firing=50))
    assert build_payload(storm)["text"].startswith("*[FIRING:50] DumontDrill (critical) (includes a DRILL)")
    mail = build_email(storm, "alerts@dumont.cloud", ["oncall@example.com"])
    assert mail["Subject"] == "[FIRING:50] DumontDrill (critical) (includes a DRILL)"
    assert "  - DRILL FIRING gpu-1: Fire drill r1" in mail.get_body(("plain",)).get_content()


def test_an_alert_without_the_label_is_told_as_before():
    payload = build_payload(message(event()))
    assert payload["text"].startswith("*[FIRING:1] DiskAlmostFull (critical)*")
    assert "DRILL" not in str(payload)
