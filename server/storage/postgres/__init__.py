"""PostgreSQL backend of the storage contract (asyncpg): see store.py."""
