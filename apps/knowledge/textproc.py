"""Text handling shared by the index, retrieval and evaluation.

Error text carries exact tokens (ORA-00060, HTTP 429, ECONNREFUSED, host names) that
embeddings blur; the lexical side keeps them whole and also splits them into their parts.
Prose (post-mortems imported from other tools) needs the opposite care: common English words
are dropped and plurals folded, so "certificates expired" matches "certificate expiry" notes.
`normalize_signature` removes what changes between two occurrences of the same failure
(ids, timestamps, addresses, counters) so recurrences look alike. `passages` cuts a long text
into pieces the embedding model reads whole (all-MiniLM-L6-v2 stops at 256 word pieces).
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
    "because due out up over about again against am any being both can could did do does doing down each "
    "few further he her here hers him his how i if me more most my myself nor off once only other ours "
    "ourselves own same she should some such them themselves those through too under until us very what "
    "where who whom why would you your yours just us may might must shall one two also however".split()
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
# A passage in words: ~1.3 word pieces a word keeps it under the model's 256-piece limit.
PASSAGE_WORDS = 160
# Headings or lead-ins of the part of a post-mortem that says why it happened.
_CAUSE_SECTION = re.compile(r"(^|\n)\s*(#+\s*)?(root[ -]?causes?|causes?|why it happened|what went wrong|analysis"
                            r"|contributing factors?|diagnosis)\b", re.I)
_CLOCK = re.compile(r"\b\d{1,2}:\d{2}\b")
# A blank line, or a line that starts a heading, a list item or a timeline entry.
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n|\n(?=\s*(?:#+\s|[-*]\s|\d{1,2}:\d{2}))")


def normalize_signature(text: str) -> str:
    """A stable form of an error message: variable parts replaced by placeholders."""
    text = _UUID.sub("<uuid>", text)
    text = _TIMESTAMP.sub("<time>", text)
    text = _DATE.sub("<date>", text)
    text = _IP.sub("<ip>", text)
    text = _HEX.sub("<hex>", text)
    text = _LONG_NUMBER.sub("<n>", text)
    return _SPACES.sub(" ", text).strip().lower()[:500]


def fold_plural(word: str) -> str:
    """Harman's S-stemmer: plural nouns and third-person verbs to their base (queries -> query)."""
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies") and not word.endswith(("eies", "aies")):
        return word[:-3] + "y"
    if word.endswith("es") and not word.endswith(("aes", "ees", "oes")):
        return word[:-1]
    if word.endswith("s") and not word.endswith(("us", "ss")):
        return word[:-1]
    return word


def lexical_tokens(text: str) -> list[str]:
    """Whole tokens (codes, hosts, exception names) plus their alphabetic and numeric parts."""
    tokens = []
    for token in _TOKEN.findall(text.lower()):
        token = token.strip(".:/-")
        if not token or token in STOPWORDS:
            continue
        tokens.append(fold_plural(token))
        parts = _PARTS.findall(token)
        if len(parts) > 1:
            tokens.extend(fold_plural(p) for p in parts if p not in STOPWORDS and (len(p) > 1 or p.isdigit()))
    return tokens


def passages(text: str, max_words: int = PASSAGE_WORDS) -> list[str]:
    """`text` in order as pieces of at most `max_words` words: whole paragraphs packed together
    while they fit (a section stays with its heading), a longer paragraph cut at sentences, a
    longer sentence at words. A short text is one passage, unchanged."""
    if len(text.split()) <= max_words:
        return [text] if text.strip() else []
    units = []  # (text, words): whole paragraphs, or the pieces of one too long to be a passage
    for paragraph in filter(None, (p.strip() for p in _PARAGRAPH_BREAK.split(text))):
        if len(paragraph.split()) <= max_words:
            units.append(paragraph)
            continue
        for sentence in _SENTENCE_END.split(paragraph):
            words = sentence.split()
            units.extend(" ".join(words[i:i + max_words]) for i in range(0, len(words), max_words))
    found, current, words = [], [], 0
    for unit in units:
        count = len(unit.split())
        if current and words + count > max_words:
            found.append("\n".join(current))
            current, words = [], 0
        current.append(unit)
        words += count
    if current:
        found.append("\n".join(current))
    return found


def passage_weight(passage: str) -> float:
    """How much a passage counts in its document's vector: the explanation of the cause more,
    a timeline (clock times, one line each) less, since every incident's timeline looks alike."""
    if _CAUSE_SECTION.search(passage):
        return 2.0
    if len(_CLOCK.findall(passage)) >= 3:
        return 0.5
    return 1.0


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
