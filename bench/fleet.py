"""Many throw-away institutions at once, for benchmarks that need a realistic number of schemas.

    with fleet(1000, prefix="bench-http") as institutions:
        ...  # 1,000 Institution + Domain rows, each with a schema copied from the template

Each schema is what sign-up's clone makes: every table, index, constraint, function and trigger
of the template and its rows (migration records, content types, permissions). The template is
dumped once (`pg_dump`, rows as INSERTs); its script, with the schema's name in place of the
template's, is sent to Postgres as a few multi-statement queries per schema (each its own
transaction, small enough for Postgres' shared lock table). Several connections work at once: on
Postgres 15 much of a copy's time is the fsync that ends every index build (about 160 per schema),
not CPU, so their waits overlap. The Institution and Domain rows are inserted in bulk once every
schema exists.

Everything made is dropped when the block ends, also on an exception, Ctrl-C or SIGTERM (and a
half-made fleet is dropped too: names are chosen before anything is created).
"""

from __future__ import annotations

import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager

import psycopg
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django_tenants.utils import quote_schema_name

from bench.common import sigterm_as_interrupt
from tenants.backup import libpq_env, postgres_tool
from tenants.directory import directory
from tenants.models import Domain, Institution
from tenants.services import domain_for
from tenants.validators import schema_name_for

# Connections copying or dropping schemas at once (more do not help on 2 CPUs).
CONNECTIONS = 8
# Postgres' lock table is shared by every session of the server (max_locks_per_transaction 64 ×
# max_connections 100 in a default install), and a transaction keeps each lock until it ends: one
# transaction making a whole schema held ~880 locks, one dropping it ~790: eight at once took most
# of the table and sixteen ran the server out of it ("out of shared memory", in every session). A
# schema is therefore made in transactions of this many pg_dump entries and dropped a few tables at
# a time (at most ~200 locks per transaction, ~1,600 for eight connections).
ENTRIES_PER_TRANSACTION = 30
TABLES_PER_DROP = 6
# Longest institution slug (Institution.slug max_length).
SLUG_MAX = 30
# Rows per bulk insert of institutions and domains.
ROWS_PER_INSERT = 500

_PLAIN_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
# The comment block pg_dump writes before each entry of a plain-format dump.
_ENTRY = re.compile(r"(?m)^--\n(?=-- (?:Data for )?Name: )")


def fleet_subdomains(count: int, prefix: str, token: str) -> list[str]:
    """`prefix-token-0` … `prefix-token-<count-1>`: valid subdomains, unique to this fleet."""
    width = len(str(max(count - 1, 0)))
    longest = f"{prefix}-{token}-{'9' * width}"
    if len(longest) > SLUG_MAX:
        raise ValueError(
            f"prefix {prefix!r} is too long for {count} institutions ({longest!r} > {SLUG_MAX} chars)"
        )
    return [f"{prefix}-{token}-{i}" for i in range(count)]


def template_script() -> list[str]:
    """The template schema as SQL scripts to run in order, each in a transaction of its own.

    pg_dump's plain output (rows as multi-row INSERTs), cut between its entries (each begins with a
    `-- Name: …` or `-- Data for Name: …` comment block) into groups of ENTRIES_PER_TRANSACTION.
    """
    template = settings.TENANT_BASE_SCHEMA
    if not _PLAIN_NAME.match(template):
        raise ValueError(f"TENANT_BASE_SCHEMA {template!r} needs quoting; fleet() copies plain names only")
    script = subprocess.run(
        [
            postgres_tool("pg_dump"),
            f"--schema={template}",
            "--no-owner",
            "--no-privileges",
            "--rows-per-insert=1000",
        ],
        env=libpq_env(),
        check=True,
        capture_output=True,
    ).stdout.decode()
    # psql meta-commands (`\restrict`) mean nothing to the server.
    script = "\n".join(line for line in script.splitlines() if not line.startswith("\\"))
    entries = _ENTRY.split(script)
    # The first piece is the header (SET search_path and the like): it goes with the first group.
    return [
        "\n".join(entries[first : first + ENTRIES_PER_TRANSACTION])
        for first in range(0, len(entries), ENTRIES_PER_TRANSACTION)
    ]


def copy_script(script: str, schema_name: str) -> str:
    """`script` (the template's) creating `schema_name` instead.

    Every occurrence of the template's name as a word is taken to be the schema qualifying a name:
    the template holds no rows but migration records, content types and permissions.
    """
    template = settings.TENANT_BASE_SCHEMA
    if not _PLAIN_NAME.match(schema_name):
        raise ValueError(f"schema name {schema_name!r} needs quoting")
    return re.sub(rf"(?<![\w$\"]){re.escape(template)}(?![\w$\"])", schema_name, script)


def _connect() -> psycopg.Connection:
    """A connection of our own (the scripts set search_path, which must not leak into Django's)."""
    params = connection.get_connection_params()
    for django_only in ("cursor_factory", "context"):
        params.pop(django_only, None)
    conn = psycopg.connect(**params, autocommit=True)
    # Throw-away schemas: a crash may lose the last commits, and they are dropped anyway.
    conn.execute("SET synchronous_commit = off")
    return conn


def _in_parallel(items: list[str], work: Callable[[psycopg.Connection, str], None], connections: int) -> None:
    """`work(conn, item)` for every item over `connections` connections (one item per call).

    On KeyboardInterrupt (Ctrl-C, or SIGTERM through sigterm_as_interrupt) or an error, no new item
    starts and the ones running finish before this returns or raises, so whatever the clean-up sees
    is all there will be.
    """
    if not items:
        return
    stop = threading.Event()
    local = threading.local()
    opened: list[psycopg.Connection] = []
    lock = threading.Lock()

    def run(item: str) -> None:
        if stop.is_set():
            return
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = _connect()
            with lock:
                opened.append(conn)
        work(conn, item)

    pool = ThreadPoolExecutor(max_workers=max(1, min(connections, len(items))), thread_name_prefix="fleet")
    futures: list[Future] = []
    try:
        futures = [pool.submit(run, item) for item in items]
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.5, return_when=FIRST_EXCEPTION)
            for future in done:
                future.result()  # an error in one copy stops the others
    finally:
        stop.set()
        for future in futures:
            future.cancel()
        pool.shutdown(wait=True)
        for conn in opened:
            conn.close()


def create_schemas(schema_names: list[str], *, connections: int = CONNECTIONS, progress: bool = True) -> None:
    """Copy the template into each of `schema_names` (which must not exist yet).

    Each schema is made by one connection, in a few transactions (see ENTRIES_PER_TRANSACTION): an
    interruption can leave one half-made, which `drop_schemas` drops like the others.
    """
    scripts = template_script()
    started = time.perf_counter()
    made = 0
    lock = threading.Lock()

    def copy(conn: psycopg.Connection, schema_name: str) -> None:
        nonlocal made
        for script in scripts:
            conn.execute(copy_script(script, schema_name))
        with lock:
            made += 1
            if progress and made % 250 == 0:
                print(
                    f"  {made}/{len(schema_names)} schemas ({time.perf_counter() - started:.0f} s)",
                    flush=True,
                )

    _in_parallel(schema_names, copy, connections)


def drop_schemas(schema_names: Iterable[str], *, connections: int = CONNECTIONS) -> int:
    """Drop those of `schema_names` that exist; how many were dropped.

    Each schema's tables go TABLES_PER_DROP at a time, then the schema with what is left. If a
    parallel drop fails anyway (the server's lock table full, say), what is left is dropped one
    schema at a time.
    """
    names = list(schema_names)

    def existing() -> list[str]:
        with _connect() as conn:
            rows = conn.execute(
                "SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s)", [names]
            ).fetchall()
        return [row[0] for row in rows]

    def drop(conn: psycopg.Connection, schema_name: str) -> None:
        schema = quote_schema_name(schema_name)
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = %s AND c.relkind IN ('r', 'p') ORDER BY c.relname",
                [schema_name],
            ).fetchall()
        ]
        for first in range(0, len(tables), TABLES_PER_DROP):
            names = ", ".join(
                f"{schema}.{quote_schema_name(t)}" for t in tables[first : first + TABLES_PER_DROP]
            )
            conn.execute(f"DROP TABLE IF EXISTS {names} CASCADE")
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")

    found = existing()
    try:
        _in_parallel(found, drop, connections)
    except psycopg.Error as error:
        print(
            f"  parallel drop failed ({error.__class__.__name__}: {error}); dropping one at a time",
            flush=True,
        )
        _in_parallel(existing(), drop, 1)
    return len(found)


def create_institutions(subdomains: list[str], prefix: str) -> list[Institution]:
    """Institution and Domain rows for schemas that exist, in one transaction."""
    now = timezone.now()
    connection.set_schema_to_public()
    with transaction.atomic():
        institutions = Institution.objects.bulk_create(
            [
                Institution(
                    name=f"{prefix} {subdomain}",
                    slug=subdomain,
                    schema_name=schema_name_for(subdomain),
                    country="GB",
                    currency="GBP",
                    timezone="Europe/London",
                )
                for subdomain in subdomains
            ],
            batch_size=ROWS_PER_INSERT,
        )
        Domain.objects.bulk_create(
            [
                Domain(domain=domain_for(i.slug), tenant=i, is_primary=True, verified_at=now)
                for i in institutions
            ],
            batch_size=ROWS_PER_INSERT,
        )
        # bulk_create sends no post_save: tell every process's host directory once.
        transaction.on_commit(directory.invalidate)
    return institutions


def drop_fleet(subdomains: list[str], *, connections: int = CONNECTIONS) -> int:
    """Drop the schemas, domains and institutions of `subdomains` that exist (also half-made ones)."""
    connection.close()  # an interrupted query may have left the connection unusable
    connection.set_schema_to_public()
    dropped = drop_schemas([schema_name_for(s) for s in subdomains], connections=connections)
    # Their schemas are gone, so django-tenants' post_delete has nothing left to drop; deleting
    # through the ORM also removes whatever a benchmark attached to them (subscriptions, …).
    rows = 0
    for first in range(0, len(subdomains), ROWS_PER_INSERT):
        rows += Institution.objects.filter(slug__in=subdomains[first : first + ROWS_PER_INSERT]).count()
        Institution.objects.filter(slug__in=subdomains[first : first + ROWS_PER_INSERT]).delete()
    directory.invalidate()
    return max(dropped, rows)


@contextmanager
def _signals_ignored() -> Iterator[None]:
    """Neither Ctrl-C nor SIGTERM interrupts the clean-up half-way."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def fleet(
    count: int, *, prefix: str, connections: int = CONNECTIONS, verbose: bool = True
) -> Iterator[list[Institution]]:
    """`count` real institutions (rows, verified domains, schemas copied from the template).

    Slugs are `<prefix>-<random token>-<n>`; everything is dropped when the block exits, however it
    exits. Ctrl-C and SIGTERM inside the block raise KeyboardInterrupt (after the clean-up).
    """
    if count < 0:
        raise ValueError("count must not be negative")
    token = secrets.token_hex(3)
    subdomains = fleet_subdomains(count, prefix, token)
    out = sys.stdout if verbose else None
    try:
        with sigterm_as_interrupt():
            started = time.perf_counter()
            if out:
                print(
                    f"Making {count} institutions ({prefix}-{token}-*, schemas copied from the template) …",
                    file=out,
                )
            create_schemas(
                [schema_name_for(s) for s in subdomains], connections=connections, progress=verbose
            )
            institutions = create_institutions(subdomains, prefix)
            if out:
                seconds = time.perf_counter() - started
                each = seconds * 1000 / max(count, 1)
                print(
                    f"  made {count} in {seconds:.1f} s ({each:.0f} ms each, {connections} connections)",
                    file=out,
                )
            yield institutions
    finally:
        with _signals_ignored():
            started = time.perf_counter()
            dropped = drop_fleet(subdomains, connections=connections)
            if out:
                print(f"Dropped {dropped} institutions in {time.perf_counter() - started:.1f} s.", file=out)
