"""`migrate_schemas` that skips schemas with nothing to apply, and keeps the template migrated.

django-tenants runs `migrate` in every schema, even when none has anything to apply: tens of
milliseconds per institution and more as the database grows, minutes per thousand, at every deploy.
This command first reads the applied migrations of every institution schema, of the template and
of the extra schemas (`tenants.migration_state.extra_schemas`) with a few queries, and runs
`migrate` only in the schemas that have something pending (tenants/migration_state.py has the
rules). `--all-schemas`, or any option the check does not cover (a target, --fake, --schema, …),
runs `migrate` in every schema as django-tenants does. Either way `migrate` finds its
`django_migrations` table by name instead of listing every table of the database
(`migration_state.migration_table_found_by_name`).

New institutions are cloned from TENANT_BASE_SCHEMA, so the template must always carry every
migration: whenever all tenant schemas are migrated, the template is created if missing and
migrated with them.
"""

import os

from django.conf import settings
from django.db import connection
from django_tenants.management.commands import SyncCommon
from django_tenants.management.commands.migrate_schemas import GET_EXECUTOR_FUNCTION, MigrateSchemasCommand
from django_tenants.utils import (
    get_public_schema_name,
    get_tenant_migration_order,
    get_tenant_model,
    quote_schema_name,
    schema_exists,
)

from tenants import migration_state

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


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


class Command(MigrateSchemasCommand):
    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument(
            "--all-schemas",
            action="store_true",
            dest="all_schemas",
            help="Run migrate in every schema, as django-tenants does, even in those with nothing to "
            "apply (their post-migrate handlers run again too). By default only schemas with "
            "pending migrations are migrated.",
        )

    def handle(self, *args, **options):
        with migration_state.migration_table_found_by_name():
            self._handle(*args, **options)

    def _handle(self, *args, **options) -> None:
        reason = "--all-schemas was given" if options.get("all_schemas") else None
        if reason is None and options.get("schema_name"):
            reason = "one schema was given (--schema)"
        if reason is None and options.get("shared") and not options.get("tenant"):
            reason = "only the public schema was asked for (--shared)"
        if reason is None:
            reason = migration_state.why_not_applicable(options)
        if reason is None:
            self._handle_pending_only(*args, **options)
            return
        if int(options.get("verbosity", 1)) >= 2:
            self.stdout.write(f"Migrating every schema: {reason}.")
        self._handle_every_schema(*args, **options)

    # --- The stock command, and the template after it ---------------------------------------------

    def _handle_every_schema(self, *args, **options) -> None:
        super().handle(*args, **options)
        if not self.sync_tenant:
            return
        if self.schema_name not in (None, "", get_public_schema_name()):
            return
        self._migrate_template(self._executor())

    def _executor(self):
        return GET_EXECUTOR_FUNCTION(codename=self.executor)(self.args, self.options)

    def _migrate_template(self, executor) -> None:
        template = settings.TENANT_BASE_SCHEMA
        if not schema_exists(template):
            connection.set_schema_to_public()
            with connection.cursor() as cursor:
                cursor.execute(f"CREATE SCHEMA {quote_schema_name(template)}")
        executor.run_migrations(tenants=[template])
        connection.set_schema_to_public()

    # --- Only the schemas with something to apply ---------------------------------------------------

    def _handle_pending_only(self, *args, **options) -> None:
        SyncCommon.handle(self, *args, **options)
        public = get_public_schema_name()
        verbosity = int(options.get("verbosity", 1))
        executor = self._executor()
        if self.sync_public:
            executor.run_migrations(tenants=[public])
        if not self.sync_tenant:
            return
        connection.set_schema_to_public()
        # The institutions, in the order django-tenants migrates them.
        institutions = (
            get_tenant_model().objects.exclude(schema_name=public).values_list("schema_name", flat=True)
        )
        if (order := get_tenant_migration_order()) is not None:
            institutions = institutions.order_by(*order)
        institutions = list(institutions)
        template = settings.TENANT_BASE_SCHEMA
        taken = {public, template, *institutions}
        extras = [name for name in dict.fromkeys(migration_state.extra_schemas()) if name not in taken]
        result = migration_state.check([*institutions, template, *extras], using=options["database"])
        pending = set(result.pending)

        if verbosity >= 1:
            self.stdout.write(self._summary(institutions, extras, result))
            if unknown := result.with_unknown:
                self.stdout.write(
                    self.style.WARNING(
                        f"{_count(len(unknown), 'schema')} record migrations this code does not have "
                        f"(a rollback?), e.g. {unknown[0]}: {self._unknown_example(result, unknown[0])}. "
                        "migrate ignores them."
                    )
                )
        if verbosity >= 2:
            for name in result.pending:
                self.stdout.write(f"  {name}: {result.states[name].reason()}")

        behind = [name for name in institutions if name in pending]
        if behind:
            executor.run_migrations(tenants=behind)
        if template in pending:
            self._migrate_template(executor)
        # A ready schema handed out (renamed) since it was listed is no longer ours to migrate.
        extras_behind = [name for name in extras if name in pending and schema_exists(name)]
        if extras_behind:
            executor.run_migrations(tenants=extras_behind)
        connection.set_schema_to_public()

    def _summary(self, institutions: list[str], extras: list[str], result: migration_state.Check) -> str:
        pending = set(result.pending)
        behind = sum(1 for name in institutions if name in pending)
        template_behind = settings.TENANT_BASE_SCHEMA in pending
        extras_behind = sum(1 for name in extras if name in pending)
        checked = f"checked in {result.seconds:.1f} s"
        if not pending:
            others = "the template" + (f" and {_count(len(extras), 'ready schema')}" if extras else "")
            what = f"{len(institutions):,} institution schema{'' if len(institutions) == 1 else 's'}"
            return self.style.SUCCESS(f"All {what} and {others} are up to date ({checked}).")
        parts = [f"{behind:,} of {len(institutions):,} institution schemas"] if behind else []
        if template_behind:
            parts.append("the template")
        if extras_behind:
            parts.append(f"{extras_behind:,} of {_count(len(extras), 'ready schema')}")
        return self.style.MIGRATE_HEADING(
            f"Migrations to apply in {', '.join(parts)} ({checked}); the others are up to date."
        )

    @staticmethod
    def _unknown_example(result: migration_state.Check, schema_name: str) -> str:
        return ", ".join(f"{app}.{name}" for app, name in sorted(result.states[schema_name].unknown)[:3])
