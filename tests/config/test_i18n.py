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


def test_the_portuguese_catalogue_translates_every_message_it_holds(settings):
    """Every msgid in locale/pt_BR has a translation that is not marked fuzzy (run makemessages to add
    new ones; a new string without its Portuguese fails here)."""
    from pathlib import Path

    po = (Path(settings.BASE_DIR) / "locale" / "pt_BR" / "LC_MESSAGES" / "django.po").read_text(encoding="utf-8")
    untranslated = []
    for block in po.split("\n\n")[1:]:
        lines = block.strip().splitlines()
        if any(line.startswith("#,") and "fuzzy" in line for line in lines):
            untranslated.append(block)
            continue
        msgstr = [line for line in lines if line.startswith("msgstr")]
        if msgstr and all(line.endswith('""') for line in msgstr):
            following = lines[lines.index(msgstr[-1]) + 1:]
            if not any(line.startswith('"') for line in following):
                untranslated.append(block)
    assert untranslated == []
