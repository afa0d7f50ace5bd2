"""Flowdeck's folders on the server (the data root, the landing root, the artifact folder, the
knowledge folder), and
the one rule for showing their paths to people: relative to their root, never absolute.

An absolute path tells an outsider how the server is laid out and helps nobody fix a step: the
author wrote `invoices/2026-11.csv`, so that is what a message names, with the root by name.
"""

from __future__ import annotations

import re
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings


@dataclass(frozen=True)
class Root:
    label: str
    setting: str

    @property
    def path(self) -> Path:
        return Path(getattr(settings, self.setting)).resolve()

    def inside(self, relative: str) -> Path | None:
        """`relative` resolved under the root, or None when it (through `..` or a symlink) leads out."""
        root = self.path
        path = (root / relative).resolve()
        return path if path != root and path.is_relative_to(root) else None

    def shown(self, path: Path | str) -> str:
        """How a message names `path`: relative to this root (absolute paths elsewhere are scrubbed)."""
        resolved = Path(path).resolve()
        return resolved.relative_to(self.path).as_posix() if resolved.is_relative_to(self.path) else scrub(str(path))


DATA_ROOT = Root("the data root", "FLOWDECK_DATA_ROOT")
LANDING_ROOT = Root("the landing root", "FLOWDECK_LANDING_ROOT")
ARTIFACTS = Root("the artifact folder", "ARTIFACT_DIR")
ROOTS = (DATA_ROOT, LANDING_ROOT, ARTIFACTS)


def knowledge_directory() -> Path:
    """Where the knowledge index and its adapted spaces live: FLOWDECK_KNOWLEDGE_DIR, else under
    VAR_DIR (read at each call: tests and benchmarks move either)."""
    return Path(settings.FLOWDECK_KNOWLEDGE_DIR or Path(settings.VAR_DIR) / "knowledge")


def scrub(text: str) -> str:
    """`text` (an OS or library error, a traceback) with each root's absolute path replaced by
    its name, e.g. "Permission denied: '<the data root>/invoices/2026-11.csv'"."""
    spellings = []
    for root in ROOTS:
        configured = str(Path(getattr(settings, root.setting)).absolute())
        spellings += [(str(root.path), root.label), (configured, root.label)]
    # The longest first, so a root inside another is named as itself; "/srv/data2" is not "/srv/data".
    for absolute, label in sorted(set(spellings), key=lambda spelling: -len(spelling[0])):
        text = re.sub(re.escape(absolute) + r"(?![\w.-])", f"<{label}>", text)
    return text


def scrub_traceback(text: str) -> str:
    """A traceback as the step page shows it: the roots named as in `scrub`, and the code's own
    folders (Flowdeck's checkout, the installed packages, the standard library) too."""
    code = [(str(settings.BASE_DIR), "flowdeck"), (sysconfig.get_paths()["purelib"], "site-packages"),
            (sysconfig.get_paths()["stdlib"], "python")]
    text = scrub(text)
    for absolute, label in sorted(code, key=lambda spelling: -len(spelling[0])):
        text = text.replace(absolute + "/", f"<{label}>/")
    return text
