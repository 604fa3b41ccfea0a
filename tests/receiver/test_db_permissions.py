"""The database's files are the receiver user's alone: created 0600 whatever the umask; older ones keep their
mode, and the receiver says when others can read them."""
from __future__ import annotations

import logging
import os
import stat

import pytest

from webhook_receiver import create_app

from .payloads import alert, notification

pytestmark = pytest.mark.sqlite_only("file modes of the SQLite database and its -wal, -shm and lock files")


def mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def open_umask():
    """A umask that takes nothing away, as a service manager may leave it: the modes must not depend on it."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def test_a_new_database_and_its_wal_files_are_created_0600(open_umask, post, store, caplog):
    assert post(notification(alert())).get_json()["new"] == 1
    store.apply_intake()  # a second write; the connections stay open, so -wal and -shm are there
    for suffix in ("", "-wal", "-shm", "-writer.lock"):
        assert oct(mode(store.path + suffix)) == oct(0o600), suffix
    assert "store.world_readable" not in caplog.text


def test_an_existing_world_readable_database_keeps_its_mode_and_is_warned_about(open_umask, config_values, caplog):
    path = config_values["database"]
    with open(path, "wb"):
        pass
    os.chmod(path, 0o644)
    app = create_app(config_values)
    store = app.extensions["dumont.store"]
    try:
        with caplog.at_level(logging.WARNING, logger="webhook_receiver.store.files"):
            store.migrate()
        response = app.test_client().post("/webhook/slack-oncall", json=notification(alert()),
                                          headers={"Authorization": "Bearer s3cret-ingest-token"})
        assert response.status_code == 200
        assert mode(path) == 0o644
        assert f"store.world_readable path={path} mode=0644" in caplog.text
    finally:
        store.close()


def test_an_existing_private_database_is_not_warned_about(config_values, caplog):
    path = config_values["database"]
    with open(path, "wb"):
        pass
    os.chmod(path, 0o640)  # group-readable is the operator's choice
    app = create_app(config_values)
    try:
        with caplog.at_level(logging.WARNING):
            app.extensions["dumont.store"].migrate()
    finally:
        app.extensions["dumont.store"].close()
    assert mode(path) == 0o640
    assert "store.world_readable" not in caplog.text
