"""One page of primary keys and the total from a single query, for filters that cost more than the page."""

from __future__ import annotations

from django.core.paginator import Page, Paginator
from django.db.models import Count, QuerySet, Window

MAX_PAGE = 2**31  # beyond any real result; larger numbers go through Paginator's count


def page_of_ids(queryset: QuerySet, number, per_page: int) -> Page:
    """The `number`-th page (1-based, clamped like Paginator.get_page) of `queryset`'s primary keys, in its
    order. The total comes with the page (COUNT(*) OVER ()), so an expensive filter (a full-text search
    matching most documents) runs once instead of once for Paginator's count and once for the page."""
    paginator = Paginator(queryset.values_list("pk", flat=True), per_page)
    try:
        number = int(number)
    except (TypeError, ValueError):
        number = 1
    if number < 1 or number > MAX_PAGE:  # Paginator answers with the last page (an OFFSET past PostgreSQL's
        return paginator.get_page(number)  # bigint would be an error, not an empty page)
    rows = list(queryset.annotate(total_rows=Window(Count("pk"))).values_list("pk", "total_rows")
                [(number - 1) * per_page:number * per_page])
    if not rows:  # past the end (or nothing at all): Paginator's own answer, the last page
        return paginator.get_page(number)
    paginator.count = rows[0][1]  # a cached_property: set, it is not queried
    return Page([pk for pk, _total in rows], number, paginator)
