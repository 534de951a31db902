"""The production settings in a real browser: pages and htmx under the Content-Security-Policy, login
throttling's message (per account, whatever the address), and what a user without a role sees after logging in."""

from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(f"browser tests need Debian's chromium at {CHROMIUM} (apt-get install chromium)",
                allow_module_level=True)

from playwright.sync_api import expect  # noqa: E402

from documents.models import Document  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

# Every violation of the page's policy, as the browser reports it (the init script runs before the page's).
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__violations.push(e.violatedDirective + " " + (e.blockedURI || "inline") + " " + e.sourceFile));
"""


def test_pages_and_htmx_work_under_the_content_security_policy(page, log_in, reviewer, pdf_bytes, entity_types):
    from annotation.services import Span, annotations_predict
    from documents.services import document_create, document_extract

    document = document_extract(document=document_create(data=pdf_bytes, name="acordao.pdf")[0])
    assert document.status == Document.Status.READY
    (predicted,) = annotations_predict(document=document, model_version=None, spans=[Span(1, 3, "ORGANIZACAO", 0.9)])
    page.add_init_script(RECORD_VIOLATIONS)
    log_in(reviewer)
    for url in ["/documents/", "/documents/upload/", f"/documents/{document.pk}/", "/training/",
                "/training/datasets/", f"/review/{document.pk}/"]:
        response = page.goto(url)
        assert "script-src 'self'" in response.headers["content-security-policy"], url
        assert page.evaluate("typeof htmx") == "object", url
        assert page.evaluate("window.__violations") == [], url
    # An htmx request on the review page: accept the predicted entity, swapped in place.
    page.evaluate("window.__stillThisPage = true")
    page.locator(f"#entity-list li[data-annotation='{predicted.pk}']").get_by_role("button", name="Accept").click()
    expect(page.locator(f"#page-overlay g.box.status-accepted[data-annotation='{predicted.pk}']")).to_have_count(1)
    assert page.evaluate("window.__stillThisPage === true")
    # The language menu submits itself (static/base.js; no inline handler).
    page.select_option("select[name=language]", "pt-br")
    expect(page.locator("html")).to_have_attribute("lang", "pt-br")
    assert page.evaluate("window.__violations") == []
    assert [e for e in page.console_errors if "Content Security Policy" in e] == []


def test_the_eleventh_wrong_password_shows_the_lockout_message(page, reviewer):
    for attempt in range(11):
        page.goto("/accounts/login/")
        page.fill("#id_username", reviewer.get_username())
        page.fill("#id_password", f"wrong-{attempt}")
        page.click("main form button[type=submit]")
        page.wait_for_load_state()
    expect(page.locator("#locked-out")).to_contain_text("Too many wrong passwords for this account")
    expect(page.get_by_role("heading", name="Too many failed logins")).to_be_visible()


def test_rotating_addresses_behind_a_trusted_proxy_still_locks_the_account(page, reviewer, settings):
    """The browser's requests reach the server as if through a trusted proxy, each from another client address
    (X-Forwarded-For): 14 wrong passwords, then the right one shows the lockout page, not the queue."""
    import ipaddress

    from axes.models import AccessAttempt

    settings.DOCLOOP_TRUSTED_PROXIES = [ipaddress.ip_network("127.0.0.1")]
    for attempt in range(15):
        page.set_extra_http_headers({"X-Forwarded-For": f"203.0.113.{attempt}"})
        page.goto("/accounts/login/")
        page.fill("#id_username", reviewer.get_username())
        page.fill("#id_password", "secret-pass-123" if attempt == 14 else f"wrong-{attempt}")
        page.click("main form button[type=submit]")
        page.wait_for_load_state()
    expect(page.locator("#locked-out")).to_contain_text("logging in to it is blocked for 15 minutes, from any address")
    assert page.url.endswith("/accounts/login/")
    assert AccessAttempt.objects.filter(username=reviewer.get_username()).count() == 15  # one row per address


def test_a_user_without_a_role_is_told_so_on_the_page_they_land_on(page, log_in, stranger):
    log_in(stranger)
    expect(page.locator("#forbidden")).to_contain_text("has no role in docloop yet")
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
