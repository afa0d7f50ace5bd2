"""API tokens: shown once, stored hashed, revocable; the API refuses anything else."""

from django.urls import reverse

from apps.accounts.models import ApiToken
from apps.accounts.services import issue_token, revoke_token


def test_token_is_stored_only_as_a_hash(author):
    token, key = issue_token(author, "ci")
    stored = ApiToken.objects.get(pk=token.pk)
    assert key not in {stored.key_hash, stored.prefix, stored.name}
    assert stored.key_hash == ApiToken.hash_key(key)


def test_api_accepts_a_valid_token_and_names_the_caller(author, api_for):
    response = api_for(author).get("/api/v1/me")
    assert response.status_code == 200
    assert response.json()["username"] == author.username
    assert ApiToken.objects.get(user=author).last_used_at is not None


def test_api_refuses_no_token_a_wrong_token_and_a_revoked_token(author, client):
    from rest_framework.test import APIClient

    assert APIClient().get("/api/v1/me").status_code in (401, 403)
    wrong = APIClient()
    wrong.credentials(HTTP_AUTHORIZATION="Bearer fd_not-a-real-token")
    response = wrong.get("/api/v1/me")
    assert response.status_code == 401
    assert "unknown or was revoked" in response.json()["detail"]

    token, key = issue_token(author, "old")
    revoke_token(author, token.pk)
    revoked = APIClient()
    revoked.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert revoked.get("/api/v1/me").status_code == 401


def test_token_page_shows_the_key_once(author, client_for):
    client = client_for(author)
    response = client.post(reverse("accounts:create_token"), {"name": "laptop"}, follow=True)
    key = response.context["new_key"]
    assert key and key in response.content.decode()
    again = client.get(reverse("accounts:tokens")).content.decode()
    assert key not in again
    assert "laptop" in again


def test_api_creates_a_token_whose_key_works_then_revokes_it(author, api_for):
    api = api_for(author)
    created = api.post("/api/v1/tokens", {"name": "script"}, format="json")
    assert created.status_code == 201
    key = created.json()["key"]
    from rest_framework.test import APIClient

    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert other.get("/api/v1/me").status_code == 200
    listed = api.get("/api/v1/tokens").json()["results"]
    assert all("key" not in row and "key_hash" not in row for row in listed)
    assert api.post(f"/api/v1/tokens/{created.json()['id']}/revoke").status_code == 200
    assert other.get("/api/v1/me").status_code == 401


def test_someone_cannot_revoke_another_persons_token(author, operator, api_for):
    token, _ = issue_token(author, "mine")
    response = api_for(operator).post(f"/api/v1/tokens/{token.pk}/revoke")
    assert response.status_code == 404
    assert ApiToken.objects.get(pk=token.pk).revoked_at is None


def test_a_token_in_steady_use_notes_its_last_use_at_most_once_a_minute(author):
    from datetime import timedelta

    from django.utils import timezone
    from rest_framework.test import APIClient

    token, key = issue_token(author, "ci")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    recently = timezone.now() - timedelta(seconds=30)
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=recently)
    assert api.get("/api/v1/me").status_code == 200
    assert ApiToken.objects.get(pk=token.pk).last_used_at == recently  # no write for this call
    long_ago = timezone.now() - timedelta(minutes=2)
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=long_ago)
    assert api.get("/api/v1/me").status_code == 200
    assert ApiToken.objects.get(pk=token.pk).last_used_at > long_ago + timedelta(minutes=1)
