"""SQLite backend of the storage contract (one file, one process): see store.py."""
