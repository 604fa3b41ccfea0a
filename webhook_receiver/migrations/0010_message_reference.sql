-- Slack threads (channels/slack_api.py): the channel's id of the message that delivered each outbox row (a Slack
-- message's ts), so a later change of the same episode replies in the firing's thread. NULL until delivered, and
-- for channels that give no id (incoming webhooks, email). The same column on PostgreSQL (its 0010).
ALTER TABLE outbox ADD COLUMN reference TEXT;
-- The rows one message carried, to show a thread's first message as its alerts now stand (update_parent). Only
-- delivered rows of a threaded channel are in it: the rows a webhook queues have no reference.
CREATE INDEX outbox_reference ON outbox (reference, channel) WHERE reference IS NOT NULL;
