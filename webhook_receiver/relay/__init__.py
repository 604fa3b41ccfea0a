"""The relay: delivers the outbox through the channels."""
