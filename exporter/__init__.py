"""The dumont exporter: the dumont_* catalog, the telemetry API, the host collector and a fleet simulator.

Importing the package registers nothing; `get_telemetry()` registers its collector on first call.
"""
from exporter.telemetry import Telemetry, get_telemetry

__all__ = ["Telemetry", "get_telemetry"]
