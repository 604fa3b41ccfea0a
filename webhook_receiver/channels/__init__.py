"""Notification channels: what the receiver's outbox worker calls to tell people about alerts."""
from .config import build_channel, load_channels
from .email import EmailChannel
from .heartbeat import HeartbeatChannel
from .model import AlertEvent, Channel, ChannelSet, DeadmanConfig, Message, SendResult
from .ratelimit import SLACK_LIMITER, RateLimiter
from .slack import SlackChannel

__all__ = [
    "AlertEvent",
    "Channel",
    "ChannelSet",
    "DeadmanConfig",
    "EmailChannel",
    "HeartbeatChannel",
    "Message",
    "RateLimiter",
    "SLACK_LIMITER",
    "SendResult",
    "SlackChannel",
    "build_channel",
    "load_channels",
]
