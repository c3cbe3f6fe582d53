"""A fingerprint of every row an institution owns, to prove that requests changed none of them.

One query reads a hash of each row of each table of the institution's schema (and of its rows in
the public schema: the institution, its domains, its subscription and reminders). Comparing two
fingerprints names every row that was changed or deleted; rows added since are not compared
(a learner who enrols adds an enrolment, and changes nobody's).

Each attack runs in a transaction that is rolled back, so the committed world's fingerprint (taken
once) is what every attack starts from; Postgres' per-transaction counters say cheaply whether an
attack updated or deleted anything at all before the fingerprint is read again.
"""

from __future__ import annotations

from functools import cache

from django.db import connection

# Tables that hold no object of the institution's people (or only the test's own sign-ins).
SKIPPED_TABLES = frozenset(
    {"django_session", "django_migrations", "django_content_type", "auth_permission", "django_admin_log"}
)
# Columns that reads legitimately refresh: the directory's cached next free slot.
VOLATILE_COLUMNS = {
    "mentoring_mentorprofile": ("next_free_slot_at", "next_free_slot_checked_at", "updated_at"),
}
# Public tables that hold institutions' rows, with the condition that picks one institution's.
PUBLIC_TABLES = {
    "tenants_institution": "x.id = {institution_id}",
    "tenants_domain": "x.tenant_id = {institution_id}",
    "platform_billing_subscription": "x.institution_id = {institution_id}",
    "reminders_duereminder": "x.schema_name = '{schema}'",
}

Key = tuple[str, str]


@cache
def _tables(schema: str) -> tuple[tuple[str, str], ...]:
    """(table, single-column primary key) of every table of the schema."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.relname, a.attname
            FROM pg_index i
            JOIN pg_class c ON c.oid = i.indrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0]
            WHERE i.indisprimary AND i.indnatts = 1 AND n.nspname = %s AND c.relkind = 'r'
            ORDER BY c.relname
            """,
            [schema],
        )
        return tuple((table, pk) for table, pk in cursor.fetchall() if table not in SKIPPED_TABLES)


def _row_hash(table: str) -> str:
    dropped = "".join(f" - '{column}'" for column in VOLATILE_COLUMNS.get(table, ()))
    return f"md5((to_jsonb(x){dropped})::text)"


@cache
def _query(schema: str, institution_id: int) -> str:
    parts = [
        f'SELECT \'{table}\', x."{pk}"::text, {_row_hash(table)} FROM "{schema}"."{table}" x'
        for table, pk in _tables(schema)
    ]
    parts += [
        f"SELECT 'public.{table}', x.id::text, md5(to_jsonb(x)::text) FROM public.\"{table}\" x "
        f"WHERE {where.format(institution_id=institution_id, schema=schema)}"
        for table, where in PUBLIC_TABLES.items()
    ]
    return "\nUNION ALL\n".join(parts)


def fingerprint(institution) -> dict[Key, str]:
    """(table, primary key) → hash of the row, for every row the institution owns."""
    with connection.cursor() as cursor:
        cursor.execute(_query(institution.schema_name, institution.pk))
        return {(table, pk): digest for table, pk, digest in cursor.fetchall()}


def touched(schemas: list[str]) -> bool:
    """Whether the current transaction updated or deleted a row of these schemas, or of a public
    table that holds institutions' rows (Postgres counts it per table as it goes)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT 1 FROM pg_stat_xact_user_tables
            WHERE (n_tup_upd > 0 OR n_tup_del > 0) AND NOT relname = ANY(%s)
              AND (schemaname = ANY(%s) OR (schemaname = 'public' AND relname = ANY(%s)))
            LIMIT 1
            """,
            [list(SKIPPED_TABLES), schemas, list(PUBLIC_TABLES)],
        )
        return cursor.fetchone() is not None


def changed_rows(
    before: dict[Key, str], after: dict[Key, str], *, own: frozenset[Key] = frozenset()
) -> list[str]:
    """The rows of `before` that `after` changed or lost (except the acting person's own)."""
    problems = []
    for key, digest in before.items():
        if key in own:
            continue
        if key not in after:
            problems.append(f"{key[0]} #{key[1]} was deleted")
        elif after[key] != digest:
            problems.append(f"{key[0]} #{key[1]} was changed")
    return problems
