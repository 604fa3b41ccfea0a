"""The fire drill (`dumont-receiver drill`): a tagged synthetic alert followed hop by hop, from each Alertmanager
through the receiver to every channel the routing promises, then resolved and followed again.

`rules_src.amroute` reads what the rendered config promises, `apis` talks to Alertmanager and the receiver's history,
`follow` runs one severity's hops, `command` is the command line around them.
"""
from __future__ import annotations

from webhook_receiver.payload import DRILL_LABEL

ALERTNAME = "DumontDrill"

__all__ = ["ALERTNAME", "DRILL_LABEL"]
