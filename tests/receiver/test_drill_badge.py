"""The history page and an alert's timeline badge a fire drill's alerts (label dumont_drill), and only those."""
from __future__ import annotations

from webhook_receiver.payload import DRILL_LABEL

from .payloads import alert, notification

BADGE = '<span class="drill" title="fire drill 20240501T100000Z-abc123">drill</span>'


def test_a_drill_is_badged_on_the_history_page_and_its_timeline(client, post):
    drill = alert("DumontDrill", severity="critical", **{DRILL_LABEL: "20240501T100000Z-abc123"})
    real = alert("DiskAlmostFull", severity="critical")
    assert post(notification(drill, real)).status_code == 200

    page = client.get("/").get_data(as_text=True)
    assert page.count('class="drill"') == 1 and BADGE in page
    assert BADGE in client.get(f"/alerts/{drill['fingerprint']}").get_data(as_text=True)
    assert 'class="drill"' not in client.get(f"/alerts/{real['fingerprint']}").get_data(as_text=True)
