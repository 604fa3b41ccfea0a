"""Reconciliation with Alertmanager's API: what its webhooks never say.

Alertmanager sends no resolution for an alert that ends while silenced or inhibited, and nothing at all for one
that fires only while suppressed. The relay polls each Alertmanager's API v2 (alertmanager.py), merges what the
peers of an HA cluster say (merge.py), compares it with the alerts the history holds as firing (plan.py) and
stores the difference (Store.reconcile): suppression changes, suppressed firings, and resolutions of alerts no
Alertmanager holds any more. runner.py does one pass and keeps the peers' reachability for /metrics and the pages.
"""
