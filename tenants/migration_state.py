"""Which schemas have migrations to apply, found for every schema at once.

`migrate_schemas` runs Django's `migrate` in every schema, even when none has anything to apply,
which costs tens of milliseconds per schema. Whether a schema has anything to apply depends only
on the migrations recorded in its `django_migrations` table and on the migration files of this
code, so it can be decided for all schemas with a few queries (one UNION ALL per batch of
schemas), and `migrate` is then run only where something is pending.

The rules follow what `migrate` (with no app label or target) does in a tenant schema:

- it applies every migration of the graph, of every installed app: migrations of apps that are not
  tenant apps are recorded as applied there too (the router skips their operations);
- a squashed migration counts as applied when all the migrations it replaces are, and `migrate`
  then records the squash itself: a schema that lacks that record is not up to date either;
- recorded migrations the code does not have (after a code rollback, or of a removed app) are
  ignored by `migrate`, so they make nothing pending; they are reported;
- a schema without `django_migrations`, or that does not exist, is left to `migrate` (which
  creates the table and applies everything, or fails as it always did).

docs/operations.md ("Migrations") says when the check applies and why skipping the post-migrate
handlers (content types, permissions) of up-to-date schemas is safe.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from importlib import import_module

from django.apps import apps
from django.conf import settings
from django.db import DatabaseError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder
from django.db.models.signals import post_migrate, pre_migrate
from django.utils.module_loading import module_has_submodule
from django_tenants.utils import get_public_schema_name, quote_schema_name

# Schemas read per query: each one's django_migrations (and its primary key index) is locked
# until the query ends, so a batch stays well within Postgres' lock table.
BATCH = 200

# What Django connects to pre_migrate / post_migrate. Their work depends on the migration state
# only (see docs/operations.md), so a schema whose applied migrations did not change needs it not
# again. Any other receiver (a new app, a library) might not: then every schema is migrated.
KNOWN_RECEIVERS = frozenset(
    {
        "django.contrib.contenttypes.management.inject_rename_contenttypes_operations",
        "django.contrib.contenttypes.management.create_contenttypes",
        "django.contrib.auth.management.create_permissions",
    }
)

Migration = tuple[str, str]


@dataclass(frozen=True)
class ExpectedMigrations:
    """What the migration files of this code require a fully migrated schema to have recorded."""

    # Every migration of the graph; for a squash, the migrations it replaces and the squash itself.
    required: frozenset[Migration]
    # Every migration the code knows of (so that others can be told apart as unknown).
    known: frozenset[Migration]


@dataclass(frozen=True)
class SchemaState:
    """One schema as the check found it."""

    schema_name: str
    # False: no such schema, or it has no django_migrations table.
    has_table: bool
    missing: frozenset[Migration] = frozenset()
    unknown: frozenset[Migration] = frozenset()
    # The query that read it failed (e.g. the schema was renamed meanwhile).
    unreadable: bool = False

    @property
    def pending(self) -> bool:
        return not self.has_table or self.unreadable or bool(self.missing)

    def reason(self) -> str:
        if self.unreadable:
            return "could not be read"
        if not self.has_table:
            return "no django_migrations table (or no such schema)"
        if self.missing:
            shown = ", ".join(f"{app}.{name}" for app, name in sorted(self.missing)[:3])
            more = f" and {len(self.missing) - 3} more" if len(self.missing) > 3 else ""
            return f"lacks {shown}{more}"
        return "up to date"


@dataclass
class Check:
    """The state of every schema checked."""

    states: dict[str, SchemaState] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def pending(self) -> list[str]:
        return [name for name, state in self.states.items() if state.pending]

    @property
    def with_unknown(self) -> list[str]:
        return [name for name, state in self.states.items() if state.unknown]


def expected_migrations(loader: MigrationLoader | None = None) -> ExpectedMigrations:
    """The migrations every schema must have recorded, from this code's migration files."""
    loader = loader or MigrationLoader(None, ignore_no_migrations=True)
    required: set[Migration] = set()
    known: set[Migration] = set(loader.disk_migrations)
    for key in loader.graph.nodes:
        required.add(key)
        replaces = loader.graph.nodes[key].replaces
        required.update(replaces)
        known.update(replaces)
    return ExpectedMigrations(required=frozenset(required), known=frozenset(known | required))


def compare(
    schema_name: str, applied: frozenset[Migration] | None, expected: ExpectedMigrations
) -> SchemaState:
    """The state of a schema that has recorded `applied` (None: it has no django_migrations)."""
    if applied is None:
        return SchemaState(schema_name, has_table=False)
    return SchemaState(
        schema_name,
        has_table=True,
        missing=expected.required - applied,
        unknown=applied - expected.known,
    )


def why_not_applicable(options: dict) -> str | None:
    """Why `migrate_schemas` with these options must migrate every schema; None if it need not.

    Anything but a plain "apply everything" (a target, --fake, --plan, …), a custom per-schema
    migrate command, multi-type tenants, conflicting migrations, apps without migrations that have
    models, or pre/post-migrate receivers other than Django's own.
    """
    for option in ("app_label", "migration_name"):
        if options.get(option):
            return f"a target was given ({option})"
    for option in ("fake", "fake_initial", "plan", "prune", "run_syncdb", "check_unapplied"):
        if options.get(option):
            return f"--{option.replace('_', '-')} was given"
    base_command = getattr(
        settings, "TENANT_BASE_MIGRATE_COMMAND", "django.core.management.commands.migrate.Command"
    )
    if base_command != "django.core.management.commands.migrate.Command":
        return f"TENANT_BASE_MIGRATE_COMMAND is {base_command}"
    if getattr(settings, "HAS_MULTI_TYPE_TENANTS", False):
        return "HAS_MULTI_TYPE_TENANTS is on"
    loader = MigrationLoader(None, ignore_no_migrations=True)
    if loader.detect_conflicts():
        return "the migration graph has conflicts"
    unmigrated = sorted(
        config.label
        for config in apps.get_app_configs()
        if config.label in loader.unmigrated_apps and any(True for _ in config.get_models())
    )
    if unmigrated:
        return f"apps without migrations have models ({', '.join(unmigrated)})"
    others = sorted(unknown_receivers())
    if others:
        return f"other pre/post-migrate receivers are connected ({', '.join(others)})"
    return None


def unknown_receivers() -> set[str]:
    """pre_migrate / post_migrate receivers that are not Django's own (see KNOWN_RECEIVERS)."""
    # As `migrate` does: importing each app's management module connects its receivers.
    for config in apps.get_app_configs():
        if module_has_submodule(config.module, "management"):
            import_module(".management", config.name)
    names = set()
    for signal in (pre_migrate, post_migrate):
        for _key, receiver, _is_async in signal.receivers:
            function = receiver() if isinstance(receiver, weakref.ReferenceType) else receiver
            if function is None:
                continue
            name = (
                f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', repr(function))}"
            )
            if name not in KNOWN_RECEIVERS:
                names.add(name)
    return names


def applied_migrations(
    schema_names: Iterable[str], *, using: str = "default", batch: int = BATCH
) -> tuple[dict[str, frozenset[Migration] | None], set[str]]:
    """The migrations each schema has recorded (None: it has no django_migrations), and the
    schemas that could not be read.

    One query finds which schemas have the table, then one UNION ALL query per `batch` schemas
    reads them. A batch whose query fails (a schema renamed or dropped meanwhile) is read again
    schema by schema.
    """
    connection = connections[using]
    names = list(dict.fromkeys(schema_names))
    connection.set_schema_to_public()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n.nspname FROM pg_catalog.pg_class c"
            " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relname = 'django_migrations' AND c.relkind IN ('r', 'p') AND n.nspname = ANY(%s)",
            [names],
        )
        with_table = {row[0] for row in cursor.fetchall()}
    applied: dict[str, frozenset[Migration] | None] = {name: None for name in names}
    unreadable: set[str] = set()
    readable = [name for name in names if name in with_table]
    for first in range(0, len(readable), batch):
        chunk = readable[first : first + batch]
        try:
            applied.update(_read(connection, chunk))
        except DatabaseError:
            for name in chunk:
                try:
                    applied.update(_read(connection, [name]))
                except DatabaseError:
                    unreadable.add(name)
    return applied, unreadable


def _read(connection: BaseDatabaseWrapper, schema_names: Sequence[str]) -> dict[str, frozenset[Migration]]:
    # Schema names are quoted identifiers; the values are parameters.
    sql = " UNION ALL ".join(
        f"SELECT %s, app, name FROM {quote_schema_name(name)}.django_migrations"  # noqa: S608
        for name in schema_names
    )
    rows: dict[str, set[Migration]] = {name: set() for name in schema_names}
    # A savepoint when called inside a transaction: a failed query must not break the caller's.
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        cursor.execute(sql, list(schema_names))
        for schema_name, app, name in cursor.fetchall():
            rows[schema_name].add((app, name))
    return {name: frozenset(recorded) for name, recorded in rows.items()}


def check(schema_names: Iterable[str], *, using: str = "default") -> Check:
    """The state of each of `schema_names` (the public schema excepted) against this code."""
    started = time.perf_counter()
    expected = expected_migrations()
    names = [name for name in dict.fromkeys(schema_names) if name != get_public_schema_name()]
    applied, unreadable = applied_migrations(names, using=using)
    result = Check()
    # Most schemas have recorded the same set: compare each distinct set once.
    compared: dict[frozenset[Migration] | None, SchemaState] = {}
    for schema_name, recorded in applied.items():
        if schema_name in unreadable:
            result.states[schema_name] = SchemaState(schema_name, has_table=True, unreadable=True)
            continue
        if recorded not in compared:
            compared[recorded] = compare(schema_name, recorded, expected)
        result.states[schema_name] = replace(compared[recorded], schema_name=schema_name)
    result.seconds = time.perf_counter() - started
    return result


@contextmanager
def migration_table_found_by_name() -> Iterator[None]:
    """While it is open, `MigrationRecorder.has_table()` looks its table up by name.

    Django asks whether `django_migrations` exists by listing every table visible on the search
    path (django-tenants sets it to the schema alone for that), which scans all of `pg_class`:
    every table, index and sequence of every schema. `migrate` asks about four times per schema, so
    `migrate_schemas` cost grew with the square of the number of institutions (1,000 institutions
    are ~250,000 catalog rows). This asks for the one table in the connection's schema, through
    the catalog's index on names: the same answer, without the scan.
    """
    original = MigrationRecorder.has_table

    def has_table(recorder: MigrationRecorder) -> bool:
        schema_name = getattr(recorder.connection, "schema_name", None)
        if recorder._has_table or not schema_name:
            return original(recorder)
        with recorder.connection.cursor() as cursor:
            cursor.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c"
                " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
                " WHERE c.relname = %s AND n.nspname = %s AND c.relkind IN ('f', 'm', 'p', 'r', 'v'))",
                [recorder.Migration._meta.db_table, schema_name],
            )
            recorder._has_table = cursor.fetchone()[0]
        return recorder._has_table

    MigrationRecorder.has_table = has_table
    try:
        yield
    finally:
        MigrationRecorder.has_table = original


def extra_schemas() -> list[str]:
    """Schemas that are neither an institution's nor the template, but must be kept migrated.

    The hook for schemas made ahead of time (a pool of ready schemas): `migrate_schemas` checks them
    with the institutions and the template, and migrates those that are behind.
    """
    return []
