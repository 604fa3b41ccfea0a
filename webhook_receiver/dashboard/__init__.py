"""The fleet dashboard: savings, machines and health read from Prometheus, the Alertmanagers and the store.

Data flows one way: Prometheus / Alertmanager / the store -> these modules -> the API (views.py) -> the page.
"""
from webhook_receiver.dashboard.views import bp, init_app

__all__ = ["bp", "init_app"]
