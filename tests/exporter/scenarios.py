"""Scenario texts the exporter's tests play."""

FLEET = """\
tick: 100ms
loop: {loop}
machines:
  gpu-1: {{type: gpu, provider: vast, mounts: ["/", "/data"]}}
  cpu-1: {{type: cpu, provider: gcp}}
components: [sync, api]
phases:
  - name: healthy
    duration: 60s
    machines:
      "*":
        sync_latency_seconds: 2
        sync_ok: true
        disk_used_ratio: 0.40
        memory_used_ratio: 0.50
        cpu_percent: 30
        cost_hourly_usd: 0.50
        up: true
    components: {{sync: 1.0, api: 1.0}}
  - name: disk fills
    duration: 60s
    machines:
      gpu-1: {{disk_used_ratio: 0.95}}
  - name: outage
    machines:
      "*": {{sync_ok: false, up: false}}
      cpu-1: {{up: true}}
    components: {{sync: 0}}
"""


def fleet(loop: bool = False) -> str:
    """The contract's example fleet with three phases (60 s, 60 s, then forever)."""
    return FLEET.format(loop=str(loop).lower())

LIFECYCLE = """\
tick: 1s
machines:
  gpu-1: {type: gpu, provider: vast}
  gpu-2: {type: gpu, provider: vast, standby_type: cpu-spare}
  cpu-1: {type: cpu, provider: gcp}
phases:
  - name: healthy
    duration: 60s
    machines:
      "*": {sync_latency_seconds: 2, cpu_percent: 30}
  - name: gpu-1 falls silent, gpu-2 is retired
    duration: 60s
    machines:
      gpu-1: {reporting: false}
      gpu-2: {retired: true}
  - name: both come back
    machines:
      gpu-1: {reporting: true}
      gpu-2: {retired: false}
"""


def lifecycle() -> str:
    """Three phases of 60 s, 60 s, then forever: gpu-1 falls silent and gpu-2 is retired, then both return."""
    return LIFECYCLE


FAILOVERS = """\
tick: 1s
machines:
  gpu-1: {{type: gpu, provider: vast}}
  gpu-2: {{type: gpu, provider: vast}}
phases:
  - name: storm
    duration: 120s
    machines:
      gpu-1: {{failovers_per_minute: {rate}}}
  - name: silent storm
    duration: 60s
    machines:
      gpu-1: {{reporting: false}}
  - name: calm
    machines:
      gpu-1: {{failovers_per_minute: 0}}
"""


def failovers(rate: float) -> str:
    """gpu-1 fails over at `rate` a minute for 120 s, then 60 s more while silent, then stops."""
    return FAILOVERS.format(rate=rate)
