"""The stack on loopback."""
