"""The exit codes scripts can rely on, and the one error type that carries them.

Each command ends with one of these; the README's "Command-line client" section lists them.
"""

from enum import IntEnum


class Exit(IntEnum):
    OK = 0
    ERROR = 1  # an answer the client did not expect (a server error, a page that is not the API)
    USAGE = 2  # a wrong option or argument, or no token configured (Click uses 2 for usage errors too)
    RUN_FAILED = 3  # the run ended failed or cancelled
    RUN_PAUSED = 4  # a step failed and the run waits at a checkpoint for a decision
    VALIDATION_FAILED = 5  # the server refused what was sent: a workflow file, inputs, a decision (400)
    NOT_ALLOWED = 6  # the token is unknown or revoked (401), or lacks the role (403)
    NOT_FOUND = 7  # no such workflow, run, step or request among your teams (404)
    CONFLICT = 8  # the run or request is no longer in a state that allows this (409)
    UNREACHABLE = 9  # no answer from the console's URL
    WAIT_TIMEOUT = 10  # --timeout passed before the run finished


class Failure(Exception):
    """Ends the command with `code`, after printing `message` (and `details`, one per line)."""

    def __init__(self, code: Exit, message: str, details: list[str] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or []
