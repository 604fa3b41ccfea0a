-- Slack threads (channels/slack_api.py): the channel's id of the message that delivered each outbox row (a Slack
-- message's ts), so a later change of the same episode replies in the firing's thread. NULL until delivered, and
-- for channels that give no id (incoming webhooks, email). The same column as the SQLite store's 0010; adding a
-- nullable column without a default rewrites nothing.
ALTER TABLE outbox ADD COLUMN reference TEXT;
-- The rows one message carried, to show a thread's first message as its alerts now stand (update_parent). Only
-- delivered rows of a threaded channel are in it: the rows a webhook's transaction inserts have no reference, so
-- it costs webhooks nothing.
CREATE INDEX outbox_reference ON outbox (reference, channel) WHERE reference IS NOT NULL;
