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
