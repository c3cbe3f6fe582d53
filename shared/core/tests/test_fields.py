"""Secrets at rest: stored encrypted, read back in clear, readable after a key rotation."""

from cryptography.fernet import Fernet
from django.db import connection
from django_tenants.utils import tenant_context

from shared.core import fields
from tenant_apps.sessions.models import LiveRoomSettings


def stored_value(pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT turn_secret FROM mentoring_liveroomsettings WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def test_secrets_are_encrypted_at_rest_and_survive_rotation(institution_a, settings):
    with tenant_context(institution_a):
        row = LiveRoomSettings.objects.create(turn_secret="coturn-shared-secret")
        raw = stored_value(row.pk)
        assert "coturn-shared-secret" not in raw
        assert LiveRoomSettings.objects.get(pk=row.pk).turn_secret == "coturn-shared-secret"

        # A new key goes first; the old one still decrypts what it wrote.
        settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), *settings.FIELD_ENCRYPTION_KEYS]
        fields._fernet.cache_clear()
        assert LiveRoomSettings.objects.get(pk=row.pk).turn_secret == "coturn-shared-secret"
        row.save()
        assert stored_value(row.pk) != raw
    fields._fernet.cache_clear()


def test_empty_secrets_stay_empty(institution_a):
    with tenant_context(institution_a):
        row = LiveRoomSettings.objects.create()
        assert stored_value(row.pk) == ""
        assert LiveRoomSettings.objects.get(pk=row.pk).turn_secret == ""
