import shutil
import subprocess

import pytest
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


def _catalogues(settings) -> list:
    from pathlib import Path

    folders = [Path(p) for p in settings.LOCALE_PATHS]
    return sorted(po for folder in folders for po in folder.glob("*/LC_MESSAGES/*.po"))


def _msgfmt(*args: str) -> subprocess.CompletedProcess:
    """GNU msgfmt (gettext), which `make install` already needs for compilemessages."""
    msgfmt = shutil.which("msgfmt")
    if msgfmt is None:
        pytest.fail("msgfmt not found: install gettext (apt-get install gettext), as compilemessages needs")
    return subprocess.run([msgfmt, *args], capture_output=True, text=True, check=False)


def test_there_is_a_portuguese_catalogue(settings):
    assert [po.parent.parent.name for po in _catalogues(settings)] == ["pt_BR"]


def test_every_catalogue_compiles_with_msgfmt_checks(settings):
    """`msgfmt -c` (what compilemessages runs, plus its format checks): a msgstr that drops or renames
    a %(name)s placeholder would raise KeyError or show a wrong text at runtime, and compilemessages
    refuses a catalogue with fatal errors."""
    for po in _catalogues(settings):
        result = _msgfmt("--check", "-o", "/dev/null", str(po))
        assert result.returncode == 0, f"{po}:\n{result.stderr}"


def test_msgfmt_finds_no_fuzzy_or_untranslated_portuguese_entry(settings):
    """gettext's own count, which also sees the plural forms and multi-line entries of each message."""
    for po in _catalogues(settings):
        result = _msgfmt("--statistics", "-o", "/dev/null", str(po))
        assert result.returncode == 0, f"{po}:\n{result.stderr}"
        assert "fuzzy" not in result.stderr and "untranslated" not in result.stderr, f"{po}: {result.stderr}"


def test_plural_messages_keep_their_number(settings):
    """Each plural form of a python-format message shows the number it is given (msgfmt accepts a
    msgstr[0] without the placeholder, as in "uma página"; docloop's messages always show it)."""
    import re

    placeholder = re.compile(r"%\((\w+)\)")
    for po in _catalogues(settings):
        text = po.read_text(encoding="utf-8")
        for block in text.split("\n\n"):
            if "msgid_plural" not in block or "python-format" not in block:
                continue
            entry = _entry(block)
            wanted = set(placeholder.findall(entry["msgid_plural"]))
            for key, value in entry.items():
                if key.startswith("msgstr["):
                    assert set(placeholder.findall(value)) == wanted, f"{po}: {entry['msgid']!r} {key}"


def _entry(block: str) -> dict[str, str]:
    """The fields of one .po entry, continuation lines joined (unescaped enough for placeholders)."""
    fields: dict[str, str] = {}
    key = None
    for line in block.strip().splitlines():
        if line.startswith("#"):
            continue
        if line.startswith('"') and key:
            fields[key] += line[1:-1]
        else:
            key, _, value = line.partition(" ")
            fields[key] = value.strip()[1:-1]
    return fields
