"""A pool of ready schemas: migrated, unassigned, renamed to an institution's name at sign-up.

Cloning the template takes hundreds of milliseconds and grows with the catalog; renaming a schema
that was cloned in advance takes about one. `schema_claim` runs inside the provisioning transaction
(a rollback hands the schema back to the pool), `schema_pool_fill` runs in the background (Celery,
after every claim and on beat) and keeps TENANT_SCHEMA_POOL_SIZE schemas waiting. docs/tenancy.md
explains the choices.
"""

import hashlib
import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

from django.apps import apps
from django.conf import settings
from django.db import connection, transaction
from django.db.migrations.loader import MigrationLoader
from django.db.models import QuerySet
from django_tenants.clone import CloneSchema
from django_tenants.utils import quote_schema_name, schema_exists
from psycopg import sql

from .models import ReadySchema

logger = logging.getLogger(__name__)

# Pool schemas are named `pool__<hex>`. A subdomain never has two hyphens in a row, so no
# institution's schema (the subdomain with hyphens as underscores) can ever look like one.
POOL_PREFIX = "pool__"
# Key of the Postgres advisory lock under which a filler counts the pool and adds a schema.
FILL_LOCK_KEY = 0x706F6F6C  # "pool"


class TemplateBehind(Exception):
    """The template schema lacks migrations the running code has: nothing can be cloned from it yet."""


@dataclass(frozen=True)
class PoolFill:
    created: int = 0
    dropped: int = 0


# --- Which migrations a schema must carry ------------------------------------------------------


@cache
def tenant_leaf_migrations() -> frozenset[tuple[str, str]]:
    """The last migration of each tenant app, as the code on disk has them (read once per process)."""
    labels = {config.label for config in apps.get_app_configs() if config.name in settings.TENANT_APPS}
    loader = MigrationLoader(None, ignore_no_migrations=True)
    return frozenset(node for node in loader.graph.leaf_nodes() if node[0] in labels)


@cache
def migration_fingerprint() -> str:
    """What a pool schema must have been made with to be handed out by this code."""
    leaves = "\n".join(f"{app}.{name}" for app, name in sorted(tenant_leaf_migrations()))
    return hashlib.sha256(leaves.encode()).hexdigest()


def missing_migrations(schema_name: str) -> set[tuple[str, str]]:
    """The tenant leaf migrations that `schema_name` has not recorded as applied."""
    if not schema_exists(schema_name):
        return set(tenant_leaf_migrations())
    with connection.cursor() as cursor:
        cursor.execute(
            sql.SQL("SELECT app, name FROM {}.django_migrations").format(sql.Identifier(schema_name))
        )
        applied = set(cursor.fetchall())
    return set(tenant_leaf_migrations()) - applied


# --- Claiming (inside the provisioning transaction) --------------------------------------------


def schema_claim(*, schema_name: str) -> bool:
    """Rename a ready pool schema to `schema_name`; False (and nothing done) when none is ready.

    Runs inside the caller's transaction: if it rolls back, the rename and the removal from the
    pool roll back with it and the schema is ready for the next sign-up. Concurrent claims never
    get the same schema (`FOR UPDATE SKIP LOCKED`) and never wait for one another.
    """
    if settings.TENANT_SCHEMA_POOL_SIZE <= 0:
        return False
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        cursor.execute(
            """
            DELETE FROM tenants_readyschema
            WHERE id = (
                SELECT id FROM tenants_readyschema
                WHERE migration_fingerprint = %s
                ORDER BY id
                LIMIT 1
                FOR UPDATE SKIP LOCKED
            )
            RETURNING schema_name
            """,
            [migration_fingerprint()],
        )
        row = cursor.fetchone()
        if row is None:
            return False
        cursor.execute(f"ALTER SCHEMA {quote_schema_name(row[0])} RENAME TO {quote_schema_name(schema_name)}")
    return True


def schema_pool_fill_soon() -> None:
    """Ask a worker to top the pool up, once the current transaction commits."""
    from .tasks import schema_pool_fill

    # A broker that is down must not turn a committed sign-up into an error: the beat fills later.
    transaction.on_commit(lambda: schema_pool_fill.apply_async(expires=600), robust=True)


# --- Filling (in the background) ---------------------------------------------------------------


def _fill_lock() -> None:
    """Serialise fillers until the current transaction ends (a transaction-level lock: it cannot
    outlive its transaction, even on a pooled connection whose session goes on)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [FILL_LOCK_KEY])


def _drop_one(queryset: QuerySet[ReadySchema], *, above: int | None = None) -> bool:
    """Drop one schema of `queryset` that no claim holds (only while more than `above` wait)."""
    with transaction.atomic():
        if above is not None:
            _fill_lock()
            if queryset.count() <= above:
                return False
        ready = queryset.select_for_update(skip_locked=True).first()
        if ready is None:
            return False
        with connection.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA IF EXISTS {quote_schema_name(ready.schema_name)} CASCADE")
        ready.delete()
    return True


def _add_one(fresh: QuerySet[ReadySchema], *, below: int) -> bool:
    """Clone the template into a new pool schema while fewer than `below` wait; checked and
    recorded in one transaction, so a schema is in the pool whole or not at all."""
    with transaction.atomic():
        _fill_lock()  # count and add as one step: two fillers never overfill
        if fresh.count() >= below:
            return False
        schema_name = POOL_PREFIX + secrets.token_hex(8)
        CloneSchema().clone_schema(settings.TENANT_BASE_SCHEMA, schema_name, "DATA")
        # A migration of the template that committed while it was being copied shows up here.
        if missing := missing_migrations(schema_name):
            raise TemplateBehind(f"a clone of {settings.TENANT_BASE_SCHEMA} lacks {sorted(missing)}")
        ReadySchema.objects.create(schema_name=schema_name, migration_fingerprint=migration_fingerprint())
    return True


def schema_pool_fill(*, target: int | None = None) -> PoolFill:
    """Drop stale pool schemas and clone fresh ones until `target` (TENANT_SCHEMA_POOL_SIZE) wait.

    Safe to run any number of times, at once, in any process: each schema is added under an
    advisory lock after counting again. A schema made before a deploy that added tenant migrations
    is dropped, not migrated: a fresh clone of the migrated template is exactly what a sign-up
    without the pool gets.
    """
    target = settings.TENANT_SCHEMA_POOL_SIZE if target is None else target
    target = max(target, 0)
    connection.set_schema_to_public()
    fingerprint = migration_fingerprint()
    created = dropped = 0
    while _drop_one(ReadySchema.objects.exclude(migration_fingerprint=fingerprint)):
        dropped += 1
    fresh = ReadySchema.objects.filter(migration_fingerprint=fingerprint)
    while _drop_one(fresh.order_by("-id"), above=target):
        dropped += 1
    if fresh.count() < target and (missing := missing_migrations(settings.TENANT_BASE_SCHEMA)):
        logger.warning(
            "Schema pool not filled: %s lacks %s (run migrate_schemas).",
            settings.TENANT_BASE_SCHEMA,
            sorted(missing),
        )
    else:
        try:
            while _add_one(fresh, below=target):
                created += 1
        except TemplateBehind as error:
            logger.warning("Schema pool not filled: %s", error)
    if created or dropped:
        logger.info("Schema pool: %s created, %s dropped (target %s).", created, dropped, target)
    return PoolFill(created=created, dropped=dropped)


def schema_pool_drain(*, keep: Iterable[str] = ()) -> int:
    """Drop every pool schema but those named in `keep` (tests and benchmarks clean up with it)."""
    connection.set_schema_to_public()
    dropped = 0
    while _drop_one(ReadySchema.objects.exclude(schema_name__in=list(keep))):
        dropped += 1
    return dropped
