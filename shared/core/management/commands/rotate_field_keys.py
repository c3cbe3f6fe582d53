"""Re-encrypt every encrypted field with the first of FIELD_ENCRYPTION_KEYS, in every schema.

Rotation: put the new key first in FIELD_ENCRYPTION_KEYS (keep the old ones after it), deploy, run
`manage.py rotate_field_keys`, then drop the old keys. Values are rewritten with
MultiFernet.rotate(), row by row in one transaction per schema, without ever being logged.

Each institution's audit log records the rotation ("keys.rotated", with the number of its rows
re-encrypted) in the same transaction as its rows; the public schema has no audit log, so the
command's own output is the platform-level record (docs/security.md, "Security events").
"""

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import connection, transaction
from django_tenants.utils import get_tenant_model, schema_context

from shared.core.fields import EncryptedTextField, fernet
from tenant_apps.admin_console.audit import audit_record
from tenant_apps.admin_console.models import AuditEntry


def _encrypted_fields() -> list[tuple[type, list[str]]]:
    found = []
    for model in apps.get_models():
        names = [
            field.attname for field in model._meta.concrete_fields if isinstance(field, EncryptedTextField)
        ]
        if names:
            found.append((model, names))
    return found


def _table_exists(table: str) -> bool:
    return table in connection.introspection.table_names()


class Command(BaseCommand):
    help = "Re-encrypt every encrypted field with the newest key (FIELD_ENCRYPTION_KEYS[0])."

    def handle(self, *args, **options) -> None:
        rotator = fernet()
        schemas = [
            "public",
            *get_tenant_model().objects.exclude(schema_name="public").values_list("schema_name", flat=True),
        ]
        total = 0
        for schema in schemas:
            in_schema = 0
            with schema_context(schema), transaction.atomic():
                for model, names in _encrypted_fields():
                    table = model._meta.db_table
                    if not _table_exists(table):
                        continue
                    quoted = connection.ops.quote_name
                    columns = ", ".join(quoted(name) for name in names)
                    with connection.cursor() as cursor:
                        cursor.execute(f"SELECT id, {columns} FROM {quoted(table)} FOR UPDATE")  # noqa: S608
                        rows = cursor.fetchall()
                        for pk, *tokens in rows:
                            fresh = [
                                rotator.rotate(token.encode()).decode() if token else token
                                for token in tokens
                            ]
                            assignments = ", ".join(f"{quoted(name)} = %s" for name in names)
                            cursor.execute(
                                f"UPDATE {quoted(table)} SET {assignments} WHERE id = %s",  # noqa: S608
                                [*fresh, pk],
                            )
                            in_schema += 1
                if schema != "public" and _table_exists(AuditEntry._meta.db_table):
                    audit_record(
                        actor=None,
                        actor_label="PeerLearn operators (rotate_field_keys)",
                        action="keys.rotated",
                        target="FIELD_ENCRYPTION_KEYS",
                        changes={"rows_reencrypted": [None, in_schema]},
                        address="",
                    )
            total += in_schema
        self.stdout.write(f"Re-encrypted {total} rows in {len(schemas)} schemas.")
