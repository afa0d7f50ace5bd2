"""Pagination that stays cheap on long histories (100,000 runs and more).

`KeyPaginator` pages over the primary keys of `queryset` alone (scoped and filtered as the
person may see), then loads the page's rows by key from `rows` (default: the same queryset), a
queryset with the joins the page shows. PostgreSQL then skips OFFSET rows inside one index instead
of joining every skipped row, and plans and runs the joins for 25 rows, not the whole filtered set.

Every page reads one key past its end to know whether another follows, so the count runs only
when a page shows it. With `count_cap`, the count stops at that many rows: a full COUNT(*) over
the history costs more than the page itself. Past the cap the total reads "many"
(`count_is_exact` is false). A page number past the end shows the last page.

With `count_with_keys`, the page's key query carries the count (COUNT(*) OVER ()), for a
queryset whose filter costs more than reading its rows (the approval inbox's rule): the filter
runs once, for both. `lead` reads at least that many keys from the start in the same query
(`lead_keys`), for what a page shows of its first requests beyond the page.
"""

from __future__ import annotations

from django.core.paginator import EmptyPage, Page, PageNotAnInteger, Paginator
from django.db.models import Count, Window
from django.utils.functional import cached_property


class KeyPage(Page):
    def __init__(self, object_list, number, paginator, *, more: bool):
        super().__init__(object_list, number, paginator)
        self._more = more

    def has_next(self) -> bool:
        return self._more


class KeyPaginator(Paginator):
    def __init__(self, queryset, per_page: int, *, rows=None, count_cap: int | None = None,
                 count_with_keys: bool = False, lead: int = 0):
        super().__init__(queryset, per_page)
        self.count_cap = count_cap
        self.count_with_keys = count_with_keys or bool(lead)
        self.lead = lead
        self.lead_keys: list | None = None  # the first `lead` keys, when the page was among them
        self._keys = queryset.values_list("pk", flat=True)
        self._rows = queryset if rows is None else rows

    @cached_property
    def count(self) -> int:
        keys = self._keys.order_by()
        # One row past the cap tells "more than the cap" from "exactly the cap".
        return (keys[: self.count_cap + 1] if self.count_cap is not None else keys).count()

    @property
    def count_is_exact(self) -> bool:
        return self.count_cap is None or self.count <= self.count_cap

    def validate_number(self, number) -> int:
        """A whole number from 1 up; whether the page exists is found by reading it, not counting."""
        try:
            number = int(number)
        except (TypeError, ValueError):
            raise PageNotAnInteger("That page number is not an integer.") from None
        if number < 1:
            raise EmptyPage("That page number is less than 1.")
        return number

    def page(self, number) -> KeyPage:
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        keys = self._page_keys(bottom, bottom + self.per_page + 1)
        more, keys = len(keys) > self.per_page, keys[: self.per_page]
        if not keys and number > 1:
            raise EmptyPage("That page contains no results.")
        rows = {row.pk: row for row in self._rows.filter(pk__in=keys)} if keys else {}
        return KeyPage([rows[key] for key in keys if key in rows], number, self, more=more)

    def _page_keys(self, bottom: int, top: int) -> list:
        if not self.count_with_keys:
            return list(self._keys[bottom:top])
        # A page that starts among the first `lead` keys reads from the first, at least `lead` of them.
        start, stop = (0, max(top, self.lead)) if bottom < self.lead else (bottom, top)
        counted = list(self.object_list.annotate(paginator_count=Window(Count("pk")))
                       .values_list("pk", "paginator_count")[start:stop])
        if counted or start == 0:  # past the end no row carries the count: it is counted apart if shown
            self.__dict__["count"] = counted[0][1] if counted else 0
        keys = [pk for pk, _ in counted]
        if start == 0 and self.lead:
            self.lead_keys = keys[: self.lead]
        return keys[bottom - start: top - start]

    def get_page(self, number) -> KeyPage:
        """Like Paginator.get_page: page 1 for a number that is not one, else the last page."""
        try:
            return self.page(number)
        except PageNotAnInteger:
            return self.page(1)
        except EmptyPage:
            # Below 1 or past the end: the last page, as Paginator.get_page shows; finding it
            # past the count cap takes one full count.
            self.count_cap = None
            for name in ("count", "num_pages"):
                self.__dict__.pop(name, None)
            return self.page(self.num_pages)
