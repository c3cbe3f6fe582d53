"""`migrate_schemas` migrates only the schemas with something to apply (tenants/migration_state.py).

The scenarios run the real command against the committed test database (institutions A and B, the
template) and read what it printed and what the schemas recorded afterwards: the executor prints
`[standard:<schema>]` for every schema it migrates, and for no other.
"""

import re
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.db.migrations import Migration
from django.db.migrations.graph import MigrationGraph
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder
from django.db.models.signals import post_migrate
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import quote_schema_name

from shared.core.testing import drop_institution
from tenants import migration_state
from tenants.models import Institution

TEMPLATE = settings.TENANT_BASE_SCHEMA


# --- Helpers -------------------------------------------------------------------------------------


def harmless_migration() -> tuple[str, str]:
    """The last migration of a public-only app: in a tenant schema the router skips its operations,
    so applying it again there only writes its record back."""
    shared_only = {
        config.label
        for config in apps.get_app_configs()
        if config.name in settings.SHARED_APPS and config.name not in settings.TENANT_APPS
    }
    loader = MigrationLoader(None, ignore_no_migrations=True)
    return next(node for node in sorted(loader.graph.leaf_nodes()) if node[0] in shared_only)


def recorded(schema_name: str) -> set[tuple[str, str]]:
    connection.set_schema_to_public()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT app, name FROM {quote_schema_name(schema_name)}.django_migrations")
        return set(cursor.fetchall())


def execute(sql: str, params: list | None = None) -> None:
    connection.set_schema_to_public()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def forget(schema_name: str, migration: tuple[str, str]) -> None:
    execute(
        f"DELETE FROM {quote_schema_name(schema_name)}.django_migrations WHERE app = %s AND name = %s",
        list(migration),
    )


def migrate_schemas(capsys, *args: str, **options) -> str:
    """Run the command in this process; everything it printed (the executor writes to sys.stdout)."""
    capsys.readouterr()
    call_command("migrate_schemas", "--noinput", *args, **options)
    connection.set_schema_to_public()
    return capsys.readouterr().out


def migrated(output: str) -> set[str]:
    """The schemas the executor ran `migrate` in, from its `[standard:<schema>]` prefixes (with a
    progress count before the name, `[1/2 (50%) standard:<schema>]`, where it migrated several)."""
    return set(re.findall(r"^\[(?:[^\]]* )?standard:([^\]]+)\]", output, re.MULTILINE))


@pytest.fixture
def committed(_institutions, django_db_blocker) -> Iterator[tuple[Institution, Institution]]:
    """Institutions A and B, with the database open for real (committed) work; every schema is
    fully migrated before and after."""
    with django_db_blocker.unblock():
        call_command("migrate_schemas", "--noinput", verbosity=0)
        yield _institutions
        call_command("migrate_schemas", "--noinput", verbosity=0)
        connection.set_schema_to_public()


# --- Scenarios against the real database ----------------------------------------------------------


def test_nothing_pending_migrates_only_the_public_schema(committed, capsys):
    output = migrate_schemas(capsys)

    assert migrated(output) == {"public"}
    count = Institution.objects.exclude(schema_name="public").count()
    assert f"All {count:,} institution schemas and the template are up to date" in output


def test_only_the_schemas_behind_are_migrated(committed, capsys):
    a, b = committed
    migration = harmless_migration()
    forget(a.schema_name, migration)
    forget(TEMPLATE, migration)
    # An institution whose schema is empty (no django_migrations at all), as a half-made one is.
    c = Institution.objects.create(
        name="Gamma", slug="gamma-fast", schema_name="gamma_fast", country="GB", currency="GBP"
    )
    try:
        execute("CREATE SCHEMA gamma_fast")
        output = migrate_schemas(capsys, verbosity=2)

        assert migrated(output) == {"public", a.schema_name, TEMPLATE, "gamma_fast"}
        assert "Migrations to apply in 2 of" in output
        assert "gamma_fast: no django_migrations table" in output
        assert f"{a.schema_name}: lacks {'.'.join(migration)}" in output
        assert migration in recorded(a.schema_name)
        assert migration in recorded(TEMPLATE)
        assert recorded("gamma_fast") >= migration_state.expected_migrations().required
        assert recorded("gamma_fast") == recorded(b.schema_name)
    finally:
        drop_institution(c)


def test_a_migration_the_code_does_not_have_is_reported_not_migrated(committed, capsys):
    _a, b = committed
    execute(
        f"INSERT INTO {quote_schema_name(b.schema_name)}.django_migrations (app, name, applied)"
        " VALUES ('accounts', '9999_from_a_newer_release', now())"
    )
    try:
        output = migrate_schemas(capsys)

        assert migrated(output) == {"public"}
        assert "1 schema record migrations this code does not have" in output
        assert "accounts.9999_from_a_newer_release" in output
    finally:
        forget(b.schema_name, ("accounts", "9999_from_a_newer_release"))


def test_one_schema_with_schema_option_runs_the_stock_command(committed, capsys):
    a, _b = committed
    output = migrate_schemas(capsys, schema_name=a.schema_name)

    assert migrated(output) == {a.schema_name}
    assert "No migrations to apply." in output
    assert "up to date (checked" not in output


def test_all_schemas_option_visits_every_schema(committed, capsys):
    a, b = committed
    output = migrate_schemas(capsys, "--all-schemas")

    assert {"public", a.schema_name, b.schema_name, TEMPLATE} <= migrated(output)
    assert "up to date (checked" not in output


def test_the_template_is_created_and_migrated_when_missing(committed, capsys):
    execute(f"ALTER SCHEMA {quote_schema_name(TEMPLATE)} RENAME TO template_aside")
    try:
        output = migrate_schemas(capsys, verbosity=2)

        assert migrated(output) == {"public", TEMPLATE}
        assert recorded(TEMPLATE) == recorded("template_aside")
    finally:
        execute(f"DROP SCHEMA IF EXISTS {quote_schema_name(TEMPLATE)} CASCADE")
        execute(f"ALTER SCHEMA template_aside RENAME TO {quote_schema_name(TEMPLATE)}")


def test_extra_schemas_are_checked_and_migrated_when_behind(committed, capsys, monkeypatch):
    """Schemas made ahead of time (a pool of ready schemas) come through `extra_schemas()`."""
    migration = harmless_migration()
    execute("CREATE SCHEMA ready_fast_1")
    execute("CREATE SCHEMA ready_fast_2")
    try:
        execute("CREATE TABLE ready_fast_1.django_migrations (LIKE public.django_migrations INCLUDING ALL)")
        execute(
            "INSERT INTO ready_fast_1.django_migrations (app, name, applied)"
            f" SELECT app, name, applied FROM {quote_schema_name(TEMPLATE)}.django_migrations"
            " WHERE NOT (app = %s AND name = %s)",
            list(migration),
        )
        execute(
            "INSERT INTO ready_fast_1.django_migrations (app, name, applied) VALUES (%s, %s, now())",
            list(migration),
        )
        monkeypatch.setattr(migration_state, "extra_schemas", lambda: ["ready_fast_1", "ready_fast_2"])

        output = migrate_schemas(capsys)

        # ready_fast_1 recorded everything (nothing to do); ready_fast_2 was empty.
        assert migrated(output) == {"public", "ready_fast_2"}
        assert "1 of 2 ready schemas" in output
        assert recorded("ready_fast_2") == recorded(TEMPLATE)

        output = migrate_schemas(capsys)
        assert migrated(output) == {"public"}
        assert "the template and 2 ready schemas are up to date" in output
    finally:
        execute("DROP SCHEMA IF EXISTS ready_fast_1, ready_fast_2 CASCADE")


def test_migrate_finds_its_table_without_listing_the_catalog(committed, capsys):
    a, _b = committed
    with CaptureQueriesContext(connection) as queries:
        output = migrate_schemas(capsys, "--all-schemas", schema_name=a.schema_name)

    assert migrated(output) == {a.schema_name}
    assert not [q["sql"] for q in queries.captured_queries if "pg_table_is_visible" in q["sql"]]
    assert [q["sql"] for q in queries.captured_queries if "relname = " in q["sql"]]


# --- The check itself -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_migration_table_is_looked_up_in_the_schema_alone(institution_a):
    """The same answers as Django's listing of the tables, which django-tenants limits to the
    schema: the public schema's django_migrations, also on the search path, does not count."""
    execute("CREATE SCHEMA bare_lookup")
    try:
        for schema_name, exists in (
            (institution_a.schema_name, True),
            ("bare_lookup", False),
            ("public", True),
        ):
            connection.set_schema(schema_name)
            listed = MigrationRecorder(connection).has_table()
            with migration_state.migration_table_found_by_name():
                looked_up = MigrationRecorder(connection).has_table()
            assert listed is looked_up is exists, schema_name
    finally:
        connection.set_schema_to_public()


@pytest.mark.django_db
def test_applied_migrations_reads_every_schema_and_marks_missing_tables(institution_a):
    execute("CREATE SCHEMA bare_fast")

    applied, unreadable = migration_state.applied_migrations(
        [institution_a.schema_name, TEMPLATE, "bare_fast", "no_such_schema"], batch=1
    )

    assert applied[institution_a.schema_name] == frozenset(recorded(TEMPLATE))
    assert applied[TEMPLATE] == frozenset(recorded(TEMPLATE))
    assert applied["bare_fast"] is None
    assert applied["no_such_schema"] is None
    assert unreadable == set()


def test_every_migration_of_the_graph_is_required_not_only_tenant_apps():
    expected = migration_state.expected_migrations()
    loader = MigrationLoader(None, ignore_no_migrations=True)

    assert expected.required == set(loader.graph.nodes)
    assert harmless_migration() in expected.required


def _loader_with_squash() -> SimpleNamespace:
    """A loader of one app whose 0001 and 0002 are squashed, as MigrationLoader(None) builds it
    (nothing applied: the squash stands in the graph for the migrations it replaces)."""
    squash = Migration("0001_squashed_0002", "shop")
    squash.replaces = [("shop", "0001_initial"), ("shop", "0002_more")]
    later = Migration("0003_later", "shop")
    graph = MigrationGraph()
    graph.add_node(("shop", "0001_squashed_0002"), squash)
    graph.add_node(("shop", "0003_later"), later)
    graph.add_dependency(later, ("shop", "0003_later"), ("shop", "0001_squashed_0002"))
    disk = {
        ("shop", "0001_initial"),
        ("shop", "0002_more"),
        ("shop", "0001_squashed_0002"),
        ("shop", "0003_later"),
    }
    return SimpleNamespace(graph=graph, disk_migrations=dict.fromkeys(disk))


@pytest.mark.parametrize(
    ("applied", "pending"),
    [
        # Fully migrated, before or through the squash: migrate records the replaced migrations
        # and the squash itself.
        ({"0001_initial", "0002_more", "0001_squashed_0002", "0003_later"}, False),
        # All replaced applied but the squash unrecorded: migrate would record it.
        ({"0001_initial", "0002_more", "0003_later"}, True),
        # Half of the replaced migrations: migrate applies the other half.
        ({"0001_initial", "0001_squashed_0002", "0003_later"}, True),
        # Only the squash's own record: Django counts it unapplied.
        ({"0001_squashed_0002", "0003_later"}, True),
        ({"0001_initial", "0002_more", "0001_squashed_0002"}, True),
    ],
)
def test_squashed_migrations_follow_what_migrate_does(applied, pending):
    expected = migration_state.expected_migrations(_loader_with_squash())

    state = migration_state.compare("s", frozenset(("shop", name) for name in applied), expected)

    assert state.pending is pending


def test_unknown_recorded_migrations_are_reported_but_not_pending():
    expected = migration_state.expected_migrations(_loader_with_squash())
    applied = {"0001_initial", "0002_more", "0001_squashed_0002", "0003_later", "0004_from_the_future"}

    state = migration_state.compare("s", frozenset(("shop", name) for name in applied), expected)

    assert not state.pending
    assert state.unknown == {("shop", "0004_from_the_future")}


@pytest.mark.parametrize(
    "options",
    [
        {"app_label": "accounts"},
        {"app_label": "accounts", "migration_name": "0001_initial"},
        {"fake": True},
        {"fake_initial": True},
        {"plan": True},
        {"prune": True},
        {"run_syncdb": True},
        {"check_unapplied": True},
    ],
)
def test_options_the_check_does_not_cover_mean_every_schema(options):
    assert migration_state.why_not_applicable(options) is not None


def test_plain_options_use_the_check():
    assert migration_state.why_not_applicable({"fake": False, "app_label": None}) is None


def test_a_post_migrate_receiver_of_our_own_means_every_schema():
    def seed_every_schema(**kwargs):
        pass

    post_migrate.connect(seed_every_schema)
    try:
        reason = migration_state.why_not_applicable({})
    finally:
        post_migrate.disconnect(seed_every_schema)

    assert reason is not None and "seed_every_schema" in reason
    assert migration_state.why_not_applicable({}) is None
