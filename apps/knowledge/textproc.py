"""Text handling shared by the index, retrieval and evaluation.

Error text carries exact tokens (ORA-00060, HTTP 429, ECONNREFUSED, host names) that
embeddings blur; the lexical side keeps them whole and also splits them into their parts.
`normalize_signature` removes what changes between two occurrences of the same failure
(ids, timestamps, addresses, counters) so recurrences look alike.
"""

import hashlib
import re

_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I)
_TIMESTAMP = re.compile(r"\b\d{4}-\d{2}-\d{2}[t ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(z|[+-]\d{2}:?\d{2})?\b", re.I)
_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
_IP = re.compile(r"\b\d{1,3}(\.\d{1,3}){3}(:\d+)?\b")
_HEX = re.compile(r"\b0x[0-9a-f]+\b|\b[0-9a-f]{12,}\b", re.I)
_LONG_NUMBER = re.compile(r"(?<![a-z\-])\b\d{6,}\b", re.I)
_SPACES = re.compile(r"\s+")

_TOKEN = re.compile(r"[a-z0-9][a-z0-9_.\-/:]*[a-z0-9]|[a-z0-9]", re.I)
_PARTS = re.compile(r"[a-z]+|\d+", re.I)
STOPWORDS = frozenset(
    "a an and are as at be been but by for from had has have in into is it its of on or our that the their then "
    "there these this to was we were which while with will after before when during not no all also than so "
    "because due out up over".split()
)


def normalize_signature(text: str) -> str:
    """A stable form of an error message: variable parts replaced by placeholders."""
    text = _UUID.sub("<uuid>", text)
    text = _TIMESTAMP.sub("<time>", text)
    text = _DATE.sub("<date>", text)
    text = _IP.sub("<ip>", text)
    text = _HEX.sub("<hex>", text)
    text = _LONG_NUMBER.sub("<n>", text)
    return _SPACES.sub(" ", text).strip().lower()[:500]


def lexical_tokens(text: str) -> list[str]:
    """Whole tokens (codes, hosts, exception names) plus their alphabetic and numeric parts."""
    tokens = []
    for token in _TOKEN.findall(text.lower()):
        token = token.strip(".:/-")
        if not token or token in STOPWORDS:
            continue
        tokens.append(token)
        parts = _PARTS.findall(token)
        if len(parts) > 1:
            tokens.extend(p for p in parts if p not in STOPWORDS and (len(p) > 1 or p.isdigit()))
    return tokens


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def is_code(token: str) -> bool:
    """An error code, status or identifier: digits with letters (ora-00060, e4471) or 3 to 6 digits (429)."""
    has_digit = any(c.isdigit() for c in token)
    if not has_digit:
        return False
    if token.isdigit():
        return 3 <= len(token) <= 6
    return any(c.isalpha() for c in token) and len(token) >= 3
