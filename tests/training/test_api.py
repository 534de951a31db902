"""JSON endpoints authenticate by session or API token: 401 without either, 403 without the role."""

import base64

from django.core.management import call_command
from django.urls import reverse

from training.models import ApiToken, TrainingRun
from training.services.tokens import api_token_create, api_token_revoke


def _token(capsys, user) -> str:
    call_command("api_token", user.username, "--name", "ci")
    return capsys.readouterr().out.strip()


def test_the_command_prints_a_token_once_and_stores_only_its_hash(capsys, reviewer):
    token = _token(capsys, reviewer)
    row = ApiToken.objects.get()
    assert len(token) >= 40 and row.user == reviewer and row.name == "ci"
    assert token not in (row.digest, row.prefix) and token.startswith(row.prefix)


def test_a_token_reads_the_api_without_a_session(client, capsys, reviewer):
    TrainingRun.objects.create(task="token_classification", base_model="m", hyperparameters={"epochs": 1})
    token = _token(capsys, reviewer)
    response = client.get(reverse("training:api-runs"), HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 200 and response.json()["runs"][0]["status"] == "queued"
    assert ApiToken.objects.get().last_used_at is not None


def test_basic_auth_with_the_token_as_password_works_as_label_studio_sends_it(client, capsys, reviewer):
    token = _token(capsys, reviewer)
    basic = base64.b64encode(f"{reviewer.username}:{token}".encode()).decode()
    assert client.get(reverse("training:api-runs"), HTTP_AUTHORIZATION=f"Basic {basic}").status_code == 200


def test_without_a_session_or_token_the_api_answers_401_not_a_login_redirect(client, db):
    response = client.get(reverse("training:api-runs"))
    assert response.status_code == 401 and "Authentication required" in response.json()["error"]
    assert response["WWW-Authenticate"].startswith("Token")


def test_a_wrong_or_revoked_token_gets_401(client, reviewer):
    row, token = api_token_create(user=reviewer)
    assert client.get(reverse("training:api-runs"), HTTP_AUTHORIZATION="Token nope").status_code == 401
    api_token_revoke(token=row)
    assert client.get(reverse("training:api-runs"), HTTP_AUTHORIZATION=f"Token {token}").status_code == 401


def test_a_user_without_a_role_gets_403(client, stranger):
    _row, token = api_token_create(user=stranger)
    response = client.get(reverse("training:api-runs"), HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 403


def test_a_session_user_reads_the_api_too(client, reviewer):
    client.force_login(reviewer)
    assert client.get(reverse("training:api-runs")).status_code == 200
