"""The database's files on disk: created readable by the receiver's user only, and a warning for older ones.

The history holds every alert's labels and annotations (host names, customers, URLs): no business of other
users on the host. SQLite gives the -wal and -shm files it creates the database file's mode, so creating the
database file 0600 before SQLite opens it covers all three.
"""
from __future__ import annotations

import logging
import os
import stat

log = logging.getLogger(__name__)

DATABASE_FILE_MODE = 0o600  # also the store's lock files beside it
COMPANIONS = ("", "-wal", "-shm")  # the database and the files SQLite keeps beside it in WAL mode


def prepare_database_files(path: str) -> None:
    """Create `path` empty with DATABASE_FILE_MODE if missing; warn about any of its files others can read."""
    if path == ":memory:" or path.startswith("file:"):  # nothing on disk, or a URI SQLite resolves itself
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, DATABASE_FILE_MODE)
    except FileExistsError:  # an existing database keeps the mode its operator gave it
        pass
    except OSError:  # SQLite's own open reports it, with the error the store already maps to StorageError
        return
    else:
        try:
            os.fchmod(fd, DATABASE_FILE_MODE)  # whatever the umask
        finally:
            os.close(fd)
    for suffix in COMPANIONS:
        try:
            mode = stat.S_IMODE(os.stat(path + suffix).st_mode)
        except OSError:
            continue
        if mode & stat.S_IROTH:
            log.warning("store.world_readable path=%s mode=%04o hint=chmod o-r", path + suffix, mode)
