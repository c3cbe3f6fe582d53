"""`migrate_schemas` that also keeps the provisioning template schema migrated.

New institutions are cloned from TENANT_BASE_SCHEMA, so the template must always carry every
migration: whenever all tenant schemas are migrated, the template is created if missing and
migrated with them.
"""

import os

from django.conf import settings
from django.db import connection
from django_tenants.management.commands.migrate_schemas import MigrateSchemasCommand
from django_tenants.migration_executors import get_executor
from django_tenants.utils import get_public_schema_name, quote_schema_name, schema_exists

# What a forked worker of the multiprocessing executor inherited from the parent: kept alive, never
# closed or used there (the sockets are the parent's), so the worker opens its own connections.
_inherited: list = []


def _forget_inherited_connections() -> None:
    from django.db import connections
    from django.db.backends.postgresql.base import DatabaseWrapper

    _inherited.append(dict(DatabaseWrapper._connection_pools))
    DatabaseWrapper._connection_pools.clear()
    for wrapper in connections.all(initialized_only=True):
        _inherited.append(wrapper.connection)
        wrapper.connection = None


# `--executor=multiprocessing` forks after the parent has used its psycopg pool; a worker that took
# a connection from the inherited pool shared the parent's sockets and hung (docs/operations.md).
os.register_at_fork(after_in_child=_forget_inherited_connections)


class Command(MigrateSchemasCommand):
    def handle(self, *args, **options):
        super().handle(*args, **options)
        template = settings.TENANT_BASE_SCHEMA
        if not self.sync_tenant:
            return
        if self.schema_name not in (None, "", get_public_schema_name()):
            return
        if not schema_exists(template):
            connection.set_schema_to_public()
            with connection.cursor() as cursor:
                cursor.execute(f"CREATE SCHEMA {quote_schema_name(template)}")
        executor = get_executor(codename=self.executor)(self.args, self.options)
        executor.run_migrations(tenants=[template])
        connection.set_schema_to_public()
