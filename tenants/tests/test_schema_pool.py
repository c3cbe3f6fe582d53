"""The pool of ready schemas: a sign-up renames one instead of cloning the template, safely."""

import dataclasses
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django_redis import get_redis_connection
from django_tenants.utils import get_tenant_model, schema_exists, tenant_context

from shared.core.testing import HostClient, drop_institution, signup_for
from tenant_apps.accounts.models import User
from tenants import pool, services
from tenants.directory import directory, generation_key
from tenants.models import Institution, ReadySchema
from tenants.services import institution_provision
from tenants.tasks import admin_email_verification_send


@pytest.fixture
def committed(test_database, django_db_blocker):
    """No test transaction around the test: what the services commit is really committed."""
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        yield
        connection.set_schema_to_public()


@pytest.fixture
def ready_pool(committed, settings):
    """A pool of two, empty at the start; the institutions (all `pool-…`) and pool schemas made are
    dropped after."""
    settings.TENANT_SCHEMA_POOL_SIZE = 2
    pool.schema_pool_drain()
    yield
    connection.set_schema_to_public()
    for institution in Institution.objects.filter(slug__startswith="pool-"):
        drop_institution(institution)
    pool.schema_pool_drain()


def schema_oid(name: str) -> int | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT oid FROM pg_namespace WHERE nspname = %s", [name])
        row = cursor.fetchone()
    return row[0] if row else None


def recorded(schema_name: str, migration: tuple[str, str]) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT 1 FROM {schema_name}.django_migrations WHERE app = %s AND name = %s", list(migration)
        )
        return cursor.fetchone() is not None


def ready_schema_oids() -> dict[str, int]:
    return {ready.schema_name: schema_oid(ready.schema_name) for ready in ReadySchema.objects.all()}


def no_cloning(*args, **kwargs):
    raise AssertionError("the template was cloned")


def run_in_thread(function, *args, **kwargs):
    """Run `function` on a thread of its own, with its own database connection."""
    try:
        return function(*args, **kwargs)
    finally:
        connection.close()


# --- Claiming ----------------------------------------------------------------------------------


def test_a_sign_up_renames_a_ready_schema_instead_of_cloning(ready_pool, monkeypatch):
    assert pool.schema_pool_fill(target=1).created == 1
    ((ready_name, ready_oid),) = ready_schema_oids().items()
    assert ready_name.startswith(pool.POOL_PREFIX)
    monkeypatch.setattr(services.CloneSchema, "clone_schema", no_cloning)

    result = institution_provision(signup=signup_for("pool-one"))

    assert result.schema_from_pool
    assert schema_oid("pool_one") == ready_oid  # the very schema that waited, under its new name
    assert not schema_exists(ready_name)
    assert not ReadySchema.objects.exists()
    with tenant_context(result.institution):
        assert User.objects.get().email == "admin@pool-one.example"


def test_an_empty_pool_falls_back_to_cloning_the_template(ready_pool):
    result = institution_provision(signup=signup_for("pool-empty"))
    assert not result.schema_from_pool
    assert schema_exists("pool_empty")
    with tenant_context(result.institution):
        assert User.objects.get().is_tenant_admin


def test_a_pool_size_of_zero_turns_the_pool_off(ready_pool, settings):
    pool.schema_pool_fill(target=1)
    settings.TENANT_SCHEMA_POOL_SIZE = 0
    result = institution_provision(signup=signup_for("pool-off"))
    assert not result.schema_from_pool
    assert ReadySchema.objects.count() == 1
    assert pool.schema_pool_fill().dropped == 1  # and the filler drops what was waiting
    assert not ReadySchema.objects.exists()


def test_a_schema_made_for_other_migrations_is_never_handed_out(ready_pool):
    pool.schema_pool_fill(target=1)
    stale = ReadySchema.objects.get()
    # As if it had been made before a deploy that added a tenant migration.
    ReadySchema.objects.filter(pk=stale.pk).update(migration_fingerprint="before-the-deploy")

    result = institution_provision(signup=signup_for("pool-stale"))
    assert not result.schema_from_pool
    assert schema_exists(stale.schema_name)

    filled = pool.schema_pool_fill(target=1)
    assert (filled.dropped, filled.created) == (1, 1)
    assert not schema_exists(stale.schema_name)
    assert ReadySchema.objects.get().migration_fingerprint == pool.migration_fingerprint()


def test_the_pool_is_not_filled_from_a_template_missing_a_migration(db, settings, caplog):
    # Inside the test transaction: the template is as it was once the test is over.
    app, name = sorted(pool.tenant_leaf_migrations())[0]
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {settings.TENANT_BASE_SCHEMA}.django_migrations WHERE app = %s AND name = %s",
            [app, name],
        )
    with caplog.at_level(logging.WARNING, logger="tenants.pool"):
        assert pool.schema_pool_fill(target=1).created == 0
    assert not ReadySchema.objects.exists()
    assert name in caplog.text


def test_a_failure_after_the_claim_puts_the_schema_back_in_the_pool(ready_pool, monkeypatch):
    pool.schema_pool_fill(target=1)
    waiting = ready_schema_oids()

    class InjectedFailure(Exception):
        pass

    def fail(p):
        raise InjectedFailure

    monkeypatch.setattr(services, "STEPS", (*services.STEPS, services.Step("Failing", fail)))
    with pytest.raises(InjectedFailure):
        institution_provision(signup=signup_for("pool-fail"))

    assert ready_schema_oids() == waiting  # same name, same schema, ready again
    assert not schema_exists("pool_fail")
    assert not Institution.objects.filter(slug="pool-fail").exists()
    monkeypatch.undo()
    assert institution_provision(signup=signup_for("pool-fail")).schema_from_pool


def test_two_sign_ups_at_once_get_two_different_schemas(ready_pool):
    pool.schema_pool_fill(target=2)
    waiting = set(ready_schema_oids().values())
    first_claimed, first_may_finish = threading.Event(), threading.Event()

    def hold_after_the_schema(step):
        def run(p):
            step.run(p)
            if p.signup.subdomain == "pool-first":  # keeps its claim (and row lock) open
                first_claimed.set()
                assert first_may_finish.wait(30)

        return dataclasses.replace(step, run=run)

    steps = [hold_after_the_schema(s) if s.run is services._create_schema else s for s in services.STEPS]
    with pytest.MonkeyPatch.context() as patch, ThreadPoolExecutor(2) as threads:
        patch.setattr(services, "STEPS", tuple(steps))
        first = threads.submit(run_in_thread, institution_provision, signup=signup_for("pool-first"))
        assert first_claimed.wait(30)
        # The first sign-up's transaction is still open: the second skips its schema, not waits.
        second = threads.submit(run_in_thread, institution_provision, signup=signup_for("pool-second"))
        second_result = second.result(timeout=30)
        first_may_finish.set()
        first_result = first.result(timeout=30)

    assert first_result.schema_from_pool and second_result.schema_from_pool
    assert {schema_oid("pool_first"), schema_oid("pool_second")} == waiting
    assert not ReadySchema.objects.exists()


def test_the_claimed_institution_serves_its_site_at_once(ready_pool):
    pool.schema_pool_fill(target=1)
    redis = get_redis_connection("default")
    generation = int(redis.get(generation_key()) or 0)
    assert directory.lookup("pool-site.localhost") is None

    result = institution_provision(signup=signup_for("pool-site"))

    assert result.schema_from_pool
    # Every process is told that institutions changed (the directory's generation moved on).
    assert int(redis.get(generation_key()) or 0) > generation
    client = HostClient(result.host)
    landed = client.get(f"/accounts/link/{result.login_token}/", follow=True)
    assert landed.status_code == 200
    assert "Welcome, Ada" in landed.content.decode()
    assert client.get("/api/v1/me/").json()["role"] == "admin"


def test_the_verification_email_is_sent_by_a_worker_from_the_new_site(db, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        result = institution_provision(signup=signup_for("pool-mail"))
    assert callbacks  # the email and the pool's refill wait for the commit
    assert mail.outbox == []  # nothing is sent while the new admin waits for their site
    with tenant_context(result.institution):
        admin_email_verification_send.apply(args=[result.admin.pk])
    assert mail.outbox[-1].to == ["admin@pool-mail.example"]
    assert "://pool-mail.localhost/accounts/verify/" in mail.outbox[-1].body


# --- Filling -----------------------------------------------------------------------------------


def test_filling_reaches_the_target_and_again_does_nothing(ready_pool):
    assert pool.schema_pool_fill() == pool.PoolFill(created=2, dropped=0)
    assert pool.schema_pool_fill() == pool.PoolFill(created=0, dropped=0)
    assert ReadySchema.objects.count() == 2
    assert all(schema_exists(ready.schema_name) for ready in ReadySchema.objects.all())
    assert pool.schema_pool_fill(target=1) == pool.PoolFill(created=0, dropped=1)


def test_the_beat_runs_the_fill_task_every_minute(ready_pool, settings):
    from config.celery import app
    from tenants import tasks

    entry = settings.CELERY_BEAT_SCHEDULE["schema-pool-fill"]
    assert (entry["task"], entry["schedule"]) == ("tenants.tasks.schema_pool_fill", 60)
    assert entry["task"] in app.tasks
    settings.TENANT_SCHEMA_POOL_SIZE = 1
    assert tasks.schema_pool_fill.apply().get() == 1
    assert ReadySchema.objects.count() == 1


def test_two_fillers_at_once_do_not_overfill(ready_pool):
    start = threading.Barrier(2)

    def fill():
        start.wait(10)
        return pool.schema_pool_fill(target=2).created

    with ThreadPoolExecutor(2) as threads:
        created = [f.result(timeout=120) for f in [threads.submit(run_in_thread, fill) for _ in range(2)]]

    assert sum(created) == 2
    assert ReadySchema.objects.count() == 2
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'pool\\_\\_%%'")
        assert cursor.fetchone()[0] == 2  # no schema made and left outside the pool either


def test_a_sign_up_asks_for_a_refill_once_committed(db, django_capture_on_commit_callbacks, monkeypatch):
    from tenants import tasks

    sent = []
    monkeypatch.setattr(tasks.schema_pool_fill, "apply_async", lambda **options: sent.append(options))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        institution_provision(signup=signup_for("pool-kick"))
    assert sent == []
    for callback in callbacks:
        if getattr(callback, "__module__", "") == pool.__name__:
            callback()
    assert len(sent) == 1


# --- Pool schemas are not institutions ---------------------------------------------------------


def test_pool_schemas_are_not_tenants(ready_pool, capsys):
    pool.schema_pool_fill(target=2)
    institution = institution_provision(signup=signup_for("pool-tenant")).institution
    ready = ReadySchema.objects.get()
    assert not get_tenant_model().objects.filter(schema_name=ready.schema_name).exists()
    # Both schemas lose the record of a migration (of a public-only app: no tables involved), so
    # `migrate_schemas` has something to do in each one it considers.
    leaf = next(node for node in MigrationLoader(None).graph.leaf_nodes() if node[0] == "tenants")
    for schema_name in (institution.schema_name, ready.schema_name):
        with connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {schema_name}.django_migrations WHERE app = %s AND name = %s", list(leaf)
            )

    call_command("migrate_schemas", "--noinput")
    output = capsys.readouterr().out
    connection.set_schema_to_public()

    assert recorded(institution.schema_name, leaf)  # institutions are migrated ...
    assert not recorded(ready.schema_name, leaf)  # ... the schemas waiting in the pool are not
    assert ready.schema_name not in output
