"""The error pages: 404, 405 (lib.error_pages.MethodNotAllowedPage), 403 and 500, in the app's layout."""

from __future__ import annotations

import pytest
from django.urls import path, reverse

HTML = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def _fail(request):
    raise RuntimeError("boom")


def broken_processor(request):
    raise RuntimeError("a context processor that fails")


# Only for test_the_500_page_needs_no_context_processor (pytest.mark.urls).
urlpatterns = [path("fail/", _fail)]


def test_an_unknown_address_shows_the_apps_404_page(client, reviewer):
    client.force_login(reviewer)
    response = client.get("/no-such-page/", HTTP_ACCEPT=HTML)
    assert response.status_code == 404
    body = response.content.decode()
    assert 'id="not-found"' in body and "Page not found" in body and 'class="top"' in body
    assert f'href="{reverse("queue")}"' in body


def test_a_missing_document_shows_the_404_page_with_a_login_link_to_a_visitor(client, db):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert f'href="{reverse("login")}"' in response.content.decode()


def test_the_404_page_is_in_portuguese(portuguese, client, reviewer):
    client.force_login(reviewer)
    body = client.get("/no-such-page/").content.decode()
    assert "Página não encontrada" in body and "Ir para os documentos" in body


@pytest.mark.parametrize("url", ["/training/start/", "/accounts/logout/"])
def test_a_browsers_get_on_a_post_only_address_explains_itself(client, reviewer, url):
    client.force_login(reviewer)
    response = client.get(url, HTTP_ACCEPT=HTML)
    assert response.status_code == 405
    assert "POST" in response["Allow"]
    body = response.content.decode()
    assert 'id="method-not-allowed"' in body and "This address takes a form, not a visit" in body
    assert f'href="{reverse("queue")}"' in body
    client.get(reverse("queue"))  # still logged in: the GET did nothing


def test_the_405_page_leads_back_to_the_page_the_visitor_came_from(client, reviewer):
    client.force_login(reviewer)
    training = "http://testserver" + reverse("training:index")
    response = client.get(reverse("training:start"), HTTP_ACCEPT=HTML, HTTP_REFERER=training)
    assert response.status_code == 405
    assert f'href="{training}"' in response.content.decode()


def test_another_sites_referer_is_not_offered_as_the_way_back(client, reviewer):
    client.force_login(reviewer)
    response = client.get("/training/start/", HTTP_ACCEPT=HTML, HTTP_REFERER="https://elsewhere.example/x")
    assert "elsewhere.example" not in response.content.decode()


def test_htmx_and_api_clients_keep_the_bare_405(client, reviewer):
    client.force_login(reviewer)
    for headers in ({"HTTP_ACCEPT": HTML, "HTTP_HX_REQUEST": "true"}, {"HTTP_ACCEPT": "application/json"}):
        response = client.get("/training/start/", **headers)
        assert response.status_code == 405 and response.content == b"", headers


def test_the_405_page_is_in_portuguese(portuguese, client, reviewer):
    client.force_login(reviewer)
    body = client.get("/training/start/", HTTP_ACCEPT=HTML).content.decode()
    assert "Este endereço recebe um formulário, não uma visita" in body


def test_a_user_without_a_role_is_not_sent_to_a_page_they_cannot_open(client, stranger):
    client.force_login(stranger)
    response = client.get(reverse("queue"))
    assert response.status_code == 403
    assert 'id="forbidden"' in response.content.decode()
    assert 'id="error-links"' in response.content.decode()
    assert "Go to the documents" not in response.content.decode()


@pytest.mark.urls(__name__)
def test_the_500_page_needs_no_context_processor(client, db, settings):
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "OPTIONS": {
        **settings.TEMPLATES[0]["OPTIONS"],
        "context_processors": [*settings.TEMPLATES[0]["OPTIONS"]["context_processors"],
                               f"{__name__}.broken_processor"]}}]
    client.raise_request_exception = False
    response = client.get("/fail/")
    assert response.status_code == 500
    body = response.content.decode()
    assert 'id="server-error"' in body and "Server error" in body and "docloop.css" in body
