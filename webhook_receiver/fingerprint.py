"""An alert's fingerprint computed from its labels exactly as Alertmanager does, for posts that carry none.

Alertmanager before 0.19 sent no `fingerprint`. Its value is prometheus/common's `LabelSet.Fingerprint()`
(model/signature.go, labelSetToFingerprint): FNV-1a 64 over the label names in sorted (byte) order, each
name and each value followed by the separator byte 0xff, written as `%016x` (model/fingerprinting.go).
"""
from __future__ import annotations

from typing import Mapping

_OFFSET = 14695981039346656037
_PRIME = 1099511628211
_MASK = (1 << 64) - 1
_SEPARATOR = 0xFF  # never occurs in UTF-8, so ("ab", "c") and ("a", "bc") hash apart


def _add(h: int, data: bytes) -> int:
    for byte in data:
        h = ((h ^ byte) * _PRIME) & _MASK
    return h


def _utf8(text: str) -> bytes:
    # Go hashes the string's bytes; a lone surrogate cannot come from Go, but must not crash the receiver.
    return text.encode("utf-8", "surrogatepass")


def label_fingerprint(labels: Mapping[str, str]) -> str:
    """Alertmanager's fingerprint of an alert with `labels`: 16 lower-case hex digits."""
    h = _OFFSET
    # Go sorts names as byte strings; sorting the UTF-8 bytes gives the same order for any name.
    for name, value in sorted((_utf8(name), _utf8(value)) for name, value in labels.items()):
        h = _add(h, name)
        h = ((h ^ _SEPARATOR) * _PRIME) & _MASK
        h = _add(h, value)
        h = ((h ^ _SEPARATOR) * _PRIME) & _MASK
    return f"{h:016x}"
