"""Error signatures: an error message with its variable parts removed, so equal failures group.

"Timeout after 30.5s calling https://api.example.com/v2/pay/8812 (req 5f0e...)" and the same
failure a day later with other ids give the same signature; incidents and the knowledge index
match on it.
"""

import re

_RULES = [
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I), "<uuid>"),
    (re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?\b"), "<time>"),
    (re.compile(r"\b\d{4}-\d{2}-\d{2}\b"), "<date>"),
    (re.compile(r"\b0x[0-9a-f]+\b", re.I), "<hex>"),
    (re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{8,}\b", re.I), "<hex>"),
    # Digits glued to letters (v2, s3) name things; other numbers vary.
    (re.compile(r"(?<![A-Za-z])\d+(\.\d+)?"), "<n>"),
]
# A path keeps its first two folders (they say which system) and loses the variable rest.
_PATH = re.compile(r"(?<![\w:/])((?:/[\w.\-<>]+){2})(?:/[\w.\-<>]+)+")
_SPACE = re.compile(r"\s+")
MAX_SIGNATURE_LENGTH = 500


def error_signature(error_type: str, message: str) -> str:
    normalized = message
    for pattern, replacement in _RULES:
        normalized = pattern.sub(replacement, normalized)
    normalized = _PATH.sub(r"\1/<path>", normalized)
    normalized = _SPACE.sub(" ", normalized).strip()
    return f"{error_type}: {normalized}"[:MAX_SIGNATURE_LENGTH]
