"""lib.pagination.page_of_ids gives the same pages as Django's Paginator, from one query."""
import pytest
from django.core.paginator import Paginator
from django.db import connection
from django.test.utils import CaptureQueriesContext

from lib.pagination import page_of_ids

pytestmark = pytest.mark.django_db


@pytest.fixture
def users():
    from django.contrib.auth import get_user_model

    User = get_user_model()
    User.objects.bulk_create([User(username=f"u{i:03d}") for i in range(23)])
    return User.objects.order_by("-username")


@pytest.mark.parametrize("number", [1, 2, 3, "3", 0, -1, 99, "x", None, "99999999999999999999", 2**31 + 1])
def test_a_page_and_its_total_are_the_paginators(users, number):
    expected = Paginator(users.values_list("pk", flat=True), 10).get_page(number)
    page = page_of_ids(users, number, 10)
    assert list(page.object_list) == list(expected.object_list)
    assert (page.number, page.paginator.count, page.paginator.num_pages) == (
        expected.number, expected.paginator.count, expected.paginator.num_pages)
    assert page.has_next() == expected.has_next() and page.has_previous() == expected.has_previous()


def test_a_page_within_the_results_is_one_query(users):
    with CaptureQueriesContext(connection) as queries:
        page = page_of_ids(users, 2, 10)
        assert page.paginator.num_pages == 3 and len(page.object_list) == 10
    assert len(queries) == 1


def test_no_results_is_one_empty_page(db):
    from django.contrib.auth import get_user_model

    page = page_of_ids(get_user_model().objects.none(), 1, 10)
    assert list(page.object_list) == [] and page.paginator.count == 0 and page.number == 1


def test_a_page_number_past_any_offset_gives_the_queues_last_page_not_an_error(client, reviewer, ready_document):
    from django.urls import reverse

    client.force_login(reviewer)
    response = client.get(reverse("queue"), {"q": "acordao", "page": "99999999999999999999"})
    assert response.status_code == 200 and "acordao.pdf" in response.content.decode()
