"""Tests of the receiver's notification channels and the local sinks."""
