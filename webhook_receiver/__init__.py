"""webhook_receiver package."""
