"""`{% relative_time value %}`: a <time> that the console's script turns into "3 minutes ago"
(exact time on hover), showing the exact local time until then.

Formatted with plain datetime methods: Django's `date` filter and default datetime display,
used twice per timestamp, were a quarter of the runs list's rendering time.
"""

from django import template
from django.utils import timezone
from django.utils.safestring import mark_safe

register = template.Library()


@register.simple_tag
def relative_time(value) -> str:
    if value is None:
        return ""
    local = timezone.localtime(value)
    # Digits, a month's abbreviation and "+-:T" only: nothing to escape (format_html cost a third).
    return mark_safe(f'<time class="relative" datetime="{local.isoformat()}">{local.day} '
                     f'{local.strftime("%b %Y, %H:%M")}</time>')
