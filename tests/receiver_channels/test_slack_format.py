"""What a Slack message says and how it looks, for single alerts, batches, oversized batches and digests."""
from __future__ import annotations

import json

from webhook_receiver.channels import Message
from webhook_receiver.channels import formatting as fmt
from webhook_receiver.channels.slack_format import MAX_ATTACHMENTS, MAX_SECTION_CHARS, build_payload

from .helpers import HISTORY, event


def payload_for(*events, digest=False, channel=None):
    return build_payload(Message("slack-oncall", list(events), HISTORY, digest=digest), channel)


def section(attachment) -> str:
    return attachment["blocks"][0]["text"]["text"]


def test_critical_firing_is_red_with_summary_machine_description_and_links():
    payload = payload_for(event())
    assert payload["text"] == f"*[FIRING:1] DiskAlmostFull (critical)* · <{HISTORY}|History>"
    [attachment] = payload["attachments"]
    assert attachment["color"] == "#D00000"
    assert section(attachment) == (
        "*FIRING* · *DiskAlmostFull* · critical\n"
        "*DiskAlmostFull on gpu-1*\n"
        "*Machine:* gpu-1\n"
        "Disk / is 95% full\n"
        "*Started:* 2024-05-01T10:00:00Z"
    )
    links = attachment["blocks"][1]["elements"][0]["text"]
    # & in the Prometheus URL is escaped as Slack's mrkdwn requires
    assert links == (
        "<https://runbooks.example/DiskAlmostFull.md|Runbook> · "
        "<http://prometheus:9090/graph?g0.expr=x&amp;g0.tab=1|Source>"
    )


def test_alerts_alertmanager_left_out_are_said_under_the_headline():
    payload = build_payload(Message("slack-oncall", [event()], HISTORY, left_out=1))
    assert payload["text"] == (
        f"*[FIRING:1] DiskAlmostFull (critical)* · <{HISTORY}|History>\n_Alertmanager left 1 more alert of these"
        " groups out of its posts (max_alerts): they are in Alertmanager, not in the alert history._")
    assert "left" not in payload_for(event())["text"]


def test_alerts_the_receiver_cut_are_said_with_its_limit():
    only_receiver = Message("slack-oncall", [event()], HISTORY, left_out=70, cut_by_receiver=70,
                            max_body_bytes=1048576)
    assert build_payload(only_receiver)["text"].endswith(
        "\n_The receiver cut 70 more alerts of these groups from posts larger than its limit of 1,048,576 bytes"
        " (max_body_bytes): they are in Alertmanager, not in the alert history._")
    both = Message("slack-oncall", [event()], HISTORY, left_out=101, cut_by_receiver=1, max_body_bytes=65536)
    assert build_payload(both)["text"].endswith(
        "\n_Alertmanager left 100 more alerts of these groups out of its posts (max_alerts), and the receiver cut"
        " 1 more alert from posts larger than its limit of 65,536 bytes (max_body_bytes): they are in"
        " Alertmanager, not in the alert history._")


def test_the_headline_names_the_first_of_the_most_severe_and_the_colour_the_most_severe_firing():
    events = [event(severity="page", fingerprint="a"), event(severity="pager", fingerprint="b"),
              event(severity="warning", status="resolved", fingerprint="c")]
    assert fmt.headline_of(fmt.summarize(events)) == "[FIRING:2, RESOLVED:1] DiskAlmostFull (warning)"
    assert fmt.headline_of(fmt.summarize(events[:2])) == "[FIRING:2] DiskAlmostFull (page)"
    assert fmt.colour_of(fmt.summarize(events)) == fmt.UNKNOWN_COLOUR  # the resolved warning does not colour it


def test_warning_firing_is_orange_and_info_is_blue():
    assert payload_for(event(severity="warning"))["attachments"][0]["color"] == "#F2A900"
    assert payload_for(event(severity="info"))["attachments"][0]["color"] == "#2F80ED"


def test_resolved_is_green_and_says_when_it_ended():
    payload = payload_for(event(status="resolved"))
    assert payload["text"].startswith("*[RESOLVED] DiskAlmostFull (critical)*")
    [attachment] = payload["attachments"]
    assert attachment["color"] == "#2EB67D"
    assert section(attachment).startswith("*RESOLVED* · *DiskAlmostFull*")
    assert "*Resolved:* 2024-05-01T10:05:00Z" in section(attachment)


def test_several_events_make_one_message_with_one_attachment_each():
    events = [event(), event("SyncStalled", severity="warning"), event("HighCpu", status="resolved", severity="info")]
    payload = payload_for(*events)
    assert payload["text"].startswith("*[FIRING:2, RESOLVED:1] DiskAlmostFull, SyncStalled, HighCpu (critical)*")
    assert [a["color"] for a in payload["attachments"]] == ["#D00000", "#F2A900", "#2EB67D"]


def test_text_is_escaped_and_channel_is_passed():
    payload = payload_for(event(summary="load <high> & rising"), channel="#oncall")
    assert "*load &lt;high&gt; &amp; rising*" in section(payload["attachments"][0])
    assert payload["channel"] == "#oncall"


def test_too_many_events_are_summarized_with_the_history_link():
    events = [event(f"Alert{i}", fingerprint=f"fp{i}") for i in range(MAX_ATTACHMENTS + 1)]
    payload = payload_for(*events)
    [attachment] = payload["attachments"]
    text = section(attachment)
    assert text.startswith("*Too many details for one Slack message: 21 alerts* (21 firing, 0 resolved)")
    assert f"<{HISTORY}|Every alert, in full, in the alert history>" in text
    assert "• _… and 11 more alert names_" in text


def test_an_oversized_description_is_summarized_not_cut():
    payload = payload_for(event(description="x" * MAX_SECTION_CHARS))
    text = section(payload["attachments"][0])
    assert text.startswith("*Too many details for one Slack message: 1 alert*")
    assert "x" * 200 not in json.dumps(payload)
    assert HISTORY in text


def test_digest_always_summarizes_counts_by_alertname_and_severity():
    events = (
        [event("DiskAlmostFull", fingerprint=f"d{i}") for i in range(3)]
        + [event("SyncStalled", severity="warning", fingerprint="s1")]
        + [event("SyncStalled", status="resolved", severity="warning", fingerprint="s2")]
    )
    payload = payload_for(*events, digest=True)
    assert payload["text"].startswith("*[FIRING:4, RESOLVED:1] DiskAlmostFull, SyncStalled (critical)*")
    [attachment] = payload["attachments"]
    assert attachment["color"] == "#D00000"
    assert section(attachment) == "\n".join(
        [
            "*Alert storm: 5 alerts* (4 firing, 1 resolved)",
            "*By alert:*",
            "• DiskAlmostFull (critical): 3 firing",
            "• SyncStalled (warning): 1 firing, 1 resolved",
            "*Examples:*",
            "• FIRING gpu-1: DiskAlmostFull on gpu-1",
            "• FIRING gpu-1: DiskAlmostFull on gpu-1",
            "• FIRING gpu-1: DiskAlmostFull on gpu-1",
            "• FIRING gpu-1: SyncStalled on gpu-1",
            "• RESOLVED gpu-1: SyncStalled on gpu-1",
            f"<{HISTORY}|Every alert, in full, in the alert history>",
        ]
    )


def test_a_digest_of_only_resolved_alerts_is_green():
    payload = payload_for(event(status="resolved"), digest=True)
    assert payload["attachments"][0]["color"] == "#2EB67D"


def test_a_huge_alert_name_is_clipped_in_the_header():
    payload = payload_for(event("A" * 5000), event("B" * 5000))
    assert len(payload["text"]) < 300
    assert payload["text"].startswith("*[FIRING:2] " + "A" * 59 + "…, " + "B" * 59 + "…")
