"""Gateway credentials: encrypted at rest, never logged, still readable after key rotation; and
production refusing the sandbox."""

import logging

from cryptography.fernet import Fernet
from django.core.checks import run_checks
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from django_tenants.utils import tenant_context

from shared.core import fields
from tenant_apps.billing.gateways import gateway_for
from tenant_apps.billing.models import GatewayAccount

SECRET = "sk_test_51SuperSecretValue"
WEBHOOK_SECRET = "whsec_AlsoVerySecret"


def raw_row(pk: int) -> tuple[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret_key, webhook_secret FROM billing_gatewayaccount WHERE id = %s", [pk])
        return cursor.fetchone()


def test_credentials_are_encrypted_at_rest_and_never_logged(institution_a, caplog):
    caplog.set_level(logging.DEBUG)
    with tenant_context(institution_a):
        account = GatewayAccount.objects.create(
            gateway="stripe", public_key="pk_test_1", secret_key=SECRET, webhook_secret=WEBHOOK_SECRET
        )
        stored_secret, stored_webhook = raw_row(account.pk)
        assert SECRET not in stored_secret and WEBHOOK_SECRET not in stored_webhook
        assert GatewayAccount.objects.get(pk=account.pk).secret_key == SECRET
        gateway = gateway_for("stripe")
        assert SECRET not in repr(gateway.credentials) and SECRET not in repr(account)
        logging.getLogger("tenant_apps.billing").info("gateway %r account %r", gateway.credentials, account)
    assert SECRET not in caplog.text and WEBHOOK_SECRET not in caplog.text


def test_rotating_keys_re_encrypts_and_keeps_credentials_readable(institution_a, settings):
    old_key, new_key = settings.FIELD_ENCRYPTION_KEYS[0], Fernet.generate_key().decode()
    with tenant_context(institution_a):
        account = GatewayAccount.objects.create(
            gateway="razorpay", public_key="rzp_test_1", secret_key=SECRET, webhook_secret=WEBHOOK_SECRET
        )
        before = raw_row(account.pk)
    settings.FIELD_ENCRYPTION_KEYS = [new_key, old_key]
    fields._fernet.cache_clear()
    try:
        call_command("rotate_field_keys", stdout=open("/dev/null", "w"))  # noqa: SIM115
        with tenant_context(institution_a):
            after = raw_row(account.pk)
            assert after != before
            settings.FIELD_ENCRYPTION_KEYS = [new_key]  # the old key is gone: still readable
            fields._fernet.cache_clear()
            account = GatewayAccount.objects.get(pk=account.pk)
            assert (account.secret_key, account.webhook_secret) == (SECRET, WEBHOOK_SECRET)
    finally:
        settings.FIELD_ENCRYPTION_KEYS = [old_key]
        fields._fernet.cache_clear()


def test_production_refuses_the_sandbox_and_stand_in_addresses():
    with override_settings(PRODUCTION=True, BILLING_SANDBOX_ENABLED=True):
        assert "billing.E001" in {message.id for message in run_checks()}
    with override_settings(
        PRODUCTION=True, BILLING_SANDBOX_ENABLED=False, BILLING_API_BASES={"stripe": "http://127.0.0.1:1"}
    ):
        assert "billing.E002" in {message.id for message in run_checks()}
    with override_settings(PRODUCTION=True, BILLING_SANDBOX_ENABLED=False, BILLING_API_BASES={}):
        assert not {message.id for message in run_checks()} & {"billing.E001", "billing.E002"}
