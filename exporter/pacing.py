"""Turns a rate of events per minute into whole events per tick, carrying the fraction to the next tick."""
from __future__ import annotations

import math

# 0.1 added ten times is 0.999...: without the slack, a tenth of an event per tick would come a tick late.
_SLACK = 1e-9


class Pacer:
    """How many events are due for each name: each tick pays the time since the last at the rate that tick set."""

    def __init__(self):
        self._state: dict[str, tuple[float, float]] = {}   # name -> (rate per minute, fraction owed)

    def due(self, name: str, per_minute: float, elapsed: float) -> int:
        """Whole events owed for the `elapsed` seconds since the last tick; `per_minute` applies from now on."""
        # The seconds since the last tick belong to the phase that played then: a phase's last tick must not
        # be paid at the next phase's rate.
        rate, owed = self._state.get(name, (0.0, 0.0))
        owed += rate * max(0.0, elapsed) / 60.0
        count = math.floor(owed + _SLACK)
        if per_minute > 0:
            self._state[name] = (per_minute, max(0.0, owed - count))
        else:
            # A paused rate starts afresh: a fraction left from an earlier phase must not fire on its own.
            self._state.pop(name, None)
        return count

    def forget(self, name: str) -> None:
        """Drop what `name` was owed (it left the scenario)."""
        self._state.pop(name, None)
