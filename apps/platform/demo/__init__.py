"""The demo that `make run` loads: the stand-ins for the outside systems the demo workflows use
(a local SQLite database, data files, HTTP services Flowdeck serves itself), so every demo
workflow runs on a fresh machine with no outside service."""
