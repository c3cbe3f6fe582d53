"""API token authentication: DRF's answers and objects, from a lookup whose SQL is built once."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import tenant_context
from rest_framework.authtoken.models import Token

from shared.core.authentication import token_with_user
from shared.core.testing import HostClient, host_of
from tenant_apps.accounts.models import User


@pytest.fixture
def token(institution_a, user_factory) -> Token:
    user = user_factory(institution_a, full_name="Tina Token", timezone="Asia/Kolkata", phone="+441234567890")
    with tenant_context(institution_a):
        return Token.objects.create(user=user)


def _values(instance) -> dict:
    return {field.attname: getattr(instance, field.attname) for field in instance._meta.concrete_fields}


def test_the_lookup_gives_what_the_orm_gives(institution_a, token):
    with tenant_context(institution_a):
        expected = Token.objects.select_related("user").get(key=token.key)
        with CaptureQueriesContext(connection) as queries:
            found = token_with_user(token.key)
            # The user and its token come with it, as select_related leaves them.
            assert found.user.auth_token is found
    assert len([q for q in queries.captured_queries if not q["sql"].startswith("SET")]) == 1
    assert _values(found) == _values(expected)
    assert _values(found.user) == _values(expected.user)
    assert isinstance(found.user, User)
    assert not found._state.adding and found._state.db == "default"
    assert not found.user._state.adding and found.user._state.db == "default"


def test_an_unknown_key_finds_nothing(institution_a, token):
    with tenant_context(institution_a):
        assert token_with_user(token.key[:-1] + "x") is None
        assert token_with_user("") is None
        assert token_with_user("a\x00b") is None


def _api(institution, key: str):
    return HostClient(host_of(institution), HTTP_AUTHORIZATION=f"Token {key}").get("/api/v1/mentors/")


def test_the_api_takes_a_valid_token(institution_a, token):
    assert _api(institution_a, token.key).status_code == 200


@pytest.mark.parametrize("key", ["0" * 40, "nope", "a\x00b"])
def test_a_wrong_token_is_refused_with_drfs_message(institution_a, token, key):
    response = _api(institution_a, key)
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "Invalid token."
    assert response.headers["WWW-Authenticate"] == "Token"


def test_a_deactivated_users_token_is_refused(institution_a, token):
    with tenant_context(institution_a):
        User.objects.filter(pk=token.user_id).update(is_active=False)
    response = _api(institution_a, token.key)
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "User inactive or deleted."


def test_a_deleted_token_is_refused_at_once(institution_a, token):
    assert _api(institution_a, token.key).status_code == 200
    with tenant_context(institution_a):
        Token.objects.filter(pk=token.pk).delete()
    assert _api(institution_a, token.key).status_code == 401


def test_a_token_works_only_on_its_own_institutions_host(institution_a, institution_b, token):
    assert _api(institution_b, token.key).status_code == 401
