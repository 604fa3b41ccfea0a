"""Operations blueprint: /metrics, /-/healthy and /-/ready."""
from __future__ import annotations

from flask import Blueprint, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from webhook_receiver.db import get_store
from webhook_receiver.store import migrations
from webhook_receiver.store.base import StorageError

bp = Blueprint("ops", __name__)


@bp.get("/metrics")
def metrics():
    """Prometheus text exposition of the receiver's metrics."""
    return Response(generate_latest(current_app.extensions["dumont.registry"]), content_type=CONTENT_TYPE_LATEST)


@bp.get("/-/healthy")
def healthy():
    """The process answers."""
    return Response("ok\n", content_type="text/plain")


@bp.get("/-/ready")
def ready():
    """The database is reachable and carries the schema this code expects."""
    try:
        version = get_store().schema_version()
    except StorageError as exc:
        return Response(f"database unreachable: {exc}\n", status=503, content_type="text/plain")
    if version != migrations.latest():
        return Response(f"database schema is version {version}, expected {migrations.latest()}:"
                        " run `dumont-receiver init-db`\n", status=503, content_type="text/plain")
    return Response("ready\n", content_type="text/plain")
