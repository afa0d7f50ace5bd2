"""`flowdeck`: a command-line client of a Flowdeck console's REST API, for scripts and CI.

It imports nothing of the console (no Django): it only speaks HTTP to /api/v1/ with an API
token, so it works against any console a person can reach. Exit codes are in `exits.py`.
"""
