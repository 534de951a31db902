from django.urls import reverse


def test_pages_are_in_brazilian_portuguese_by_default(client, reviewer, settings):
    settings.LANGUAGE_CODE = "pt-br"
    client.force_login(reviewer)
    body = client.get(reverse("documents:list"), HTTP_ACCEPT_LANGUAGE="").content.decode()
    assert "Documentos" in body and "Enviar um PDF" in body


def test_english_is_available(client, reviewer):
    client.force_login(reviewer)
    client.post(reverse("set_language"), {"language": "en", "next": "/"})
    body = client.get(reverse("documents:list")).content.decode()
    assert "Upload a PDF" in body
