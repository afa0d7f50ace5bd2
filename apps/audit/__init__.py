"""The append-only, hash-chained audit log: who did what, when, to what, with which data."""
