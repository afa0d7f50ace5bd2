"""`{{ doc|step_doc }}`: the small markdown subset step type docs use, rendered safely.

Paragraphs, `- ` lists, **bold** and `code`; everything is escaped first, so a doc can never
inject markup.
"""

import re

from django import template
from django.utils.html import escape
from django.utils.safestring import mark_safe

register = template.Library()

_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*(.+?)\*\*")


def _inline(text: str) -> str:
    return _BOLD.sub(r"<strong>\1</strong>", _CODE.sub(r"<code>\1</code>", escape(text)))


def _block(block: str) -> str:
    lines = block.splitlines()
    if lines[0].startswith("- "):
        items, current = [], []
        for line in lines:
            if line.startswith("- ") and current:
                items.append(" ".join(current))
                current = []
            current.append(line.removeprefix("- ").strip())
        items.append(" ".join(current))
        return "<ul>" + "".join(f"<li>{_inline(item)}</li>" for item in items) + "</ul>"
    if len(lines) > 1 and lines[1].startswith("- "):
        return f"<p>{_inline(lines[0])}</p>" + _block("\n".join(lines[1:]))
    return f"<p>{_inline(' '.join(line.strip() for line in lines))}</p>"


@register.filter
def step_doc(text: str) -> str:
    blocks = [block.strip("\n") for block in re.split(r"\n\s*\n", text.strip()) if block.strip()]
    return mark_safe("\n".join(_block(block) for block in blocks))
