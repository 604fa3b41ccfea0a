"""Storage behind the Store interface; SQLite today."""
