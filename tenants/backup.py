"""Backing up one institution, and restoring it under a new subdomain.

A backup is one tar file, `<slug>-<UTC time>.tar`:

- `schema.dump`: `pg_dump --format=custom --schema=<schema>`, the institution's whole schema.
- `public.json`: its rows in the public schema (the institution, its domains, its subscription
  with its history, its usage snapshots, its pending reminders), each as `row_to_json` made it.
- `media/<name>`: every file under the institution's media prefix, read through the configured
  storage (MEDIA_ROOT/<schema>/ on disk, or <schema>/ in the S3 bucket).
- `manifest.json` (last): the format, the institution, the row count of every table of the
  schema, its applied migrations, and the size and SHA-256 of every media file.

The dump, the counts and the public rows come from one database snapshot (`pg_export_snapshot`,
handed to `pg_dump --snapshot`), so they agree with one another while the site keeps running.
Media files are read after that snapshot: uploads get fresh names and files are deleted only
after their rows, so every file the snapshot's rows refer to is still there unless it was deleted
in between.

A restore recreates the institution on a new subdomain, with a new schema, domain and media
prefix. The dump creates the schema under its original name, which may still be in use: the
restore runs in one transaction that moves the live schema aside, restores, renames the restored
schema to its new name and puts the live one back. Other sessions never see the moves (they
commit together) and Postgres refers to tables, sequences and constraints by their ids, so the
rename is complete without editing the dump's text. See docs/operations.md#backups.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import secrets
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psycopg
from django.conf import settings
from django.core.files.base import File
from django.core.files.storage import Storage, default_storage
from django.core.management import call_command
from django.db import connection, models, transaction
from django.utils import timezone
from django_tenants.utils import quote_schema_name, schema_context, schema_exists
from psycopg import sql

from shared.platform_billing.models import Plan, Subscription, SubscriptionEvent, UsageSnapshot
from shared.reminders.models import DueReminder

from .models import Domain, Institution
from .services import domain_for, subdomain_problem
from .validators import normalize_subdomain, schema_name_for

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DUMP = "schema.dump"
PUBLIC = "public.json"
MEDIA = "media/"
# Data exports' downloads in the media prefix (tenant_apps/admin_console/exports.py): not backed up.
EXPORTS = "exports/"
CHUNK = 1024 * 1024
# Postgres tools and settings the restore passes through to libpq (DATABASES["default"]["OPTIONS"]).
LIBPQ_OPTIONS = ("sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout")

Say = Callable[[str], None]


class BackupError(Exception):
    """Something an operator has to sort out; the message says what."""


@dataclass
class BackupResult:
    path: Path
    manifest: dict[str, Any]


@dataclass
class RestoreResult:
    institution: Institution
    table_counts: dict[str, int]
    media_files: int
    notes: list[str] = field(default_factory=list)


# --- Postgres: connection parameters and tools -------------------------------------------------


def _libpq_params() -> dict[str, str]:
    """The default database's connection parameters as libpq knows them."""
    settings_dict = connection.settings_dict
    params = {
        "dbname": settings_dict["NAME"],
        "host": settings_dict.get("HOST") or "",
        "port": str(settings_dict.get("PORT") or ""),
        "user": settings_dict.get("USER") or "",
        "password": settings_dict.get("PASSWORD") or "",
    }
    options = settings_dict.get("OPTIONS") or {}
    params.update({key: str(options[key]) for key in LIBPQ_OPTIONS if key in options})
    return {key: value for key, value in params.items() if value}


def libpq_env() -> dict[str, str]:
    """The same parameters as environment variables (a password never appears in `ps`)."""
    names = {"dbname": "PGDATABASE", "host": "PGHOST", "port": "PGPORT", "user": "PGUSER"}
    names.update({"password": "PGPASSWORD", "connect_timeout": "PGCONNECT_TIMEOUT"})
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LC_ALL": "C.UTF-8"}
    for key, value in _libpq_params().items():
        env[names.get(key, f"PG{key.upper()}")] = value
    return env


def postgres_tool(name: str) -> str:
    """The path of pg_dump / pg_restore / psql; refuses one older than the server."""
    path = shutil.which(name)
    if path is None:
        raise BackupError(f"{name} is not on PATH: install the PostgreSQL client of the server's version.")
    # Arguments are lists (no shell), and the programs are Postgres' own, found on PATH.
    output = subprocess.run([path, "--version"], capture_output=True, text=True, check=True).stdout  # noqa: S603
    match = re.search(r"(\d+)(?:\.\d+)?", output)
    tool_major = int(match.group(1)) if match else 0
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version_num")
        server_major = int(cursor.fetchone()[0]) // 10000
    if tool_major < server_major:
        raise BackupError(
            f"{name} is version {tool_major} but the server is {server_major}: use a newer client."
        )
    return path


def _run(command: list[str], *, stdin: IO[bytes] | None = None) -> None:
    result = subprocess.run(command, env=libpq_env(), stdin=stdin, capture_output=True, check=False)  # noqa: S603
    if result.returncode != 0:
        error = result.stderr.decode(errors="replace").strip()
        raise BackupError(f"{Path(command[0]).name} failed: {error}")


def _table_counts(cursor: psycopg.Cursor, schema: str) -> dict[str, int]:
    cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY tablename", [schema])
    counts = {}
    for (table,) in cursor.fetchall():
        cursor.execute(
            sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table))
        )
        counts[table] = cursor.fetchone()[0]
    return counts


def table_counts(schema: str) -> dict[str, int]:
    """Rows per table of `schema`, read now on Django's connection."""
    with psycopg.connect(**_libpq_params(), autocommit=True) as conn, conn.cursor() as cursor:
        return _table_counts(cursor, schema)


def _applied_migrations(cursor: psycopg.Cursor, schema: str) -> list[list[str]]:
    cursor.execute(
        sql.SQL("SELECT app, name FROM {}.django_migrations ORDER BY app, name").format(
            sql.Identifier(schema)
        )
    )
    return [[app, name] for app, name in cursor.fetchall()]


# --- Public rows ---------------------------------------------------------------------------------


def _rows(cursor: psycopg.Cursor, model: type[models.Model], column: str, values: list) -> list[dict]:
    if not values:
        return []
    cursor.execute(
        sql.SQL("SELECT row_to_json(t) FROM public.{} t WHERE t.{} = ANY(%s) ORDER BY t.{}").format(
            sql.Identifier(model._meta.db_table),
            sql.Identifier(column),
            sql.Identifier(model._meta.pk.column),
        ),
        [values],
    )
    return [row[0] for row in cursor.fetchall()]


def _public_rows(cursor: psycopg.Cursor, institution_id: int, schema: str) -> dict[str, list[dict]]:
    subscriptions = _rows(cursor, Subscription, "institution_id", [institution_id])
    plans = _rows(cursor, Plan, "id", [row["plan_id"] for row in subscriptions])
    return {
        "institution": _rows(cursor, Institution, "id", [institution_id]),
        "domains": _rows(cursor, Domain, "tenant_id", [institution_id]),
        "subscription": subscriptions,
        # Plans are the platform's: a restore finds them again by code.
        "plan_codes": {str(plan["id"]): plan["code"] for plan in plans},
        "subscription_events": _rows(
            cursor, SubscriptionEvent, "subscription_id", [s["id"] for s in subscriptions]
        ),
        "usage_snapshots": _rows(cursor, UsageSnapshot, "institution_id", [institution_id]),
        "due_reminders": _rows(cursor, DueReminder, "schema_name", [schema]),
    }


def _instance(model: type[models.Model], row: dict, **overrides: Any) -> models.Model:
    """A new (unsaved) row of `model` from `row_to_json` output; its own primary key is dropped."""
    values = {}
    for model_field in model._meta.concrete_fields:
        if model_field.primary_key or model_field.column not in row:
            continue
        value = row[model_field.column]
        values[model_field.attname] = None if value is None else model_field.to_python(value)
    values.update(overrides)
    return model(**values)


# --- Media ---------------------------------------------------------------------------------------


def media_names(storage: Storage, directory: str = "") -> Iterator[str]:
    """Every file under the current institution's prefix of `storage`, as names relative to it."""
    directories, files = storage.listdir(directory)
    for name in sorted(files):
        yield f"{directory}{name}"
    for name in sorted(directories):
        yield from media_names(storage, f"{directory}{name}/")


class _Hashing(io.RawIOBase):
    """Reads through to `source`, keeping a SHA-256 of what was read."""

    def __init__(self, source: IO[bytes]) -> None:
        self.source = source
        self.sha256 = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(size)
        self.sha256.update(data)
        return data


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(timezone.now().timestamp())
    tar.addfile(info, io.BytesIO(data))


# --- Backup --------------------------------------------------------------------------------------


def institution_backup(
    slug: str, directory: Path, *, storage: Storage | None = None, say: Say | None = None
) -> BackupResult:
    """Write a backup of the institution on `slug` into `directory`; returns its path and manifest."""
    storage = default_storage if storage is None else storage
    say = say or (lambda message: None)
    connection.set_schema_to_public()
    institution = Institution.objects.filter(slug=slug).first()
    if institution is None:
        raise BackupError(f"No institution has the subdomain “{slug}”.")
    schema = institution.schema_name
    pg_dump = postgres_tool("pg_dump")
    directory.mkdir(parents=True, exist_ok=True)
    taken_at = timezone.now()
    path = directory / f"{slug}-{taken_at:%Y%m%dT%H%M%SZ}.tar"
    partial = path.with_name(f".{path.name}.partial")

    try:
        with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
            with tempfile.TemporaryDirectory(prefix="peerlearn-backup-") as work:
                dump = Path(work) / DUMP
                with psycopg.connect(**_libpq_params()) as snapshot:
                    snapshot.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
                    with snapshot.cursor() as cursor:
                        cursor.execute("SELECT pg_export_snapshot()")
                        snapshot_id = cursor.fetchone()[0]
                        counts = _table_counts(cursor, schema)
                        migrations = _applied_migrations(cursor, schema)
                        public = _public_rows(cursor, institution.pk, schema)
                        cursor.execute("SHOW server_version")
                        server_version = cursor.fetchone()[0]
                    say(f"Dumping schema {schema} ({len(counts)} tables)…")
                    _run(
                        [
                            pg_dump,
                            "--format=custom",
                            f"--schema={schema}",
                            "--no-owner",
                            "--no-privileges",
                            f"--snapshot={snapshot_id}",
                            f"--file={dump}",
                        ]
                    )
                    snapshot.rollback()
                tar.add(dump, arcname=DUMP)
                dump_bytes = dump.stat().st_size
            _add_bytes(tar, PUBLIC, json.dumps(public, indent=1, sort_keys=True).encode())

            media = []
            with schema_context(schema):
                for name in media_names(storage):
                    if name.startswith(EXPORTS):
                        continue  # earlier exports' downloads: copies of this, not the institution's files
                    with storage.open(name, "rb") as handle:
                        info = tarfile.TarInfo(MEDIA + name)
                        info.size = handle.size
                        info.mtime = int(taken_at.timestamp())
                        reader = _Hashing(handle)
                        tar.addfile(info, reader)
                    media.append({"name": name, "size": info.size, "sha256": reader.sha256.hexdigest()})
            say(f"Copied {len(media)} media files.")

            manifest = {
                "format": FORMAT_VERSION,
                "taken_at": taken_at.isoformat(),
                "slug": institution.slug,
                "schema": schema,
                "name": institution.name,
                "postgres": server_version,
                "dump_bytes": dump_bytes,
                "table_counts": counts,
                "migrations": migrations,
                "media": media,
            }
            _add_bytes(tar, MANIFEST, json.dumps(manifest, indent=1).encode())
        partial.rename(path)
    finally:
        partial.unlink(missing_ok=True)
    return BackupResult(path=path, manifest=manifest)


# --- Restore -------------------------------------------------------------------------------------


def read_manifest(archive: Path) -> dict[str, Any]:
    with tarfile.open(archive) as tar:
        return _json_member(tar, MANIFEST)


def _json_member(tar: tarfile.TarFile, name: str) -> Any:
    try:
        member = tar.extractfile(name)
    except KeyError:
        member = None
    if member is None:
        raise BackupError(f"This is not an institution backup: it has no {name}.")
    return json.load(member)


def _restore_schema(dump: Path, *, original: str, target: str) -> None:
    """Restore the dump of schema `original` as schema `target`, in one transaction."""
    pg_restore, psql = postgres_tool("pg_restore"), postgres_tool("psql")
    aside = f"{original}_restoring_{secrets.token_hex(4)}"[:63]
    before, after = [], [f"ALTER SCHEMA {quote_schema_name(original)} RENAME TO {quote_schema_name(target)}"]
    if schema_exists(original):
        before.append(f"ALTER SCHEMA {quote_schema_name(original)} RENAME TO {quote_schema_name(aside)}")
        after.append(f"ALTER SCHEMA {quote_schema_name(aside)} RENAME TO {quote_schema_name(original)}")
    command = [psql, "--no-psqlrc", "--quiet", "--single-transaction", "--set=ON_ERROR_STOP=1"]
    for statement in before:
        command += ["-c", statement]
    command += ["-f", "-"]
    for statement in after:
        command += ["-c", statement]
    # pg_restore writes the dump as SQL; psql runs it between the renames.
    producer = subprocess.Popen(  # noqa: S603
        [pg_restore, "--no-owner", "--no-privileges", "--file=-", str(dump)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=libpq_env(),
    )
    try:
        _run(command, stdin=producer.stdout)
    finally:
        producer.stdout.close()
        producer_error = producer.stderr.read().decode(errors="replace").strip()
        producer.stderr.close()
        if producer.wait() != 0:
            raise BackupError(f"pg_restore failed: {producer_error}")


def _template_migrations() -> set[tuple[str, str]]:
    with psycopg.connect(**_libpq_params(), autocommit=True) as conn, conn.cursor() as cursor:
        return {tuple(pair) for pair in _applied_migrations(cursor, settings.TENANT_BASE_SCHEMA)}


@transaction.atomic
def _restore_public_rows(public: dict, *, slug: str, schema: str, notes: list[str]) -> Institution:
    (original,) = public["institution"]
    institution = _instance(Institution, original, slug=slug, schema_name=schema)
    institution.save()
    Domain.objects.create(
        domain=domain_for(slug), tenant=institution, is_primary=True, verified_at=timezone.now()
    )
    platform_domain = f".{settings.PLATFORM_DOMAIN}"
    for domain in public["domains"]:
        if not domain["domain"].endswith(platform_domain):
            # An institution's own domain answers for one institution only: it is not moved.
            notes.append(f"Own domain {domain['domain']} not restored: add it again under Domains.")

    plan_codes = public.get("plan_codes", {})
    for subscription_row in public["subscription"]:
        plan = Plan.objects.filter(code=plan_codes.get(str(subscription_row["plan_id"]))).first()
        if plan is None:
            notes.append("Subscription not restored: its plan does not exist on this platform.")
            continue
        subscription = _instance(
            Subscription, subscription_row, institution_id=institution.pk, plan_id=plan.pk
        )
        # Stripe's customer and subscription belong to the institution they were made for.
        for stripe_field in ("stripe_customer_id", "stripe_subscription_id"):
            value = getattr(subscription, stripe_field)
            if value and Subscription.objects.filter(**{stripe_field: value}).exists():
                setattr(subscription, stripe_field, "")
                notes.append(f"{stripe_field} cleared: the original institution still uses it.")
        subscription.save()
        for event in public["subscription_events"]:
            if event["subscription_id"] == subscription_row["id"]:
                _instance(SubscriptionEvent, event, subscription_id=subscription.pk).save()
    for usage in public["usage_snapshots"]:
        _instance(UsageSnapshot, usage, institution_id=institution.pk).save()

    pending = [row for row in public["due_reminders"] if row.get("done_at") is None]
    if Institution.objects.filter(schema_name=original["schema_name"]).exists():
        # The original still sends its own reminders to the same people.
        if pending:
            notes.append(f"{len(pending)} pending reminders not restored: the original institution is live.")
    else:
        for reminder in pending:
            _instance(DueReminder, reminder, schema_name=schema, claimed_at=None).save()
    return institution


def institution_restore(
    archive: Path, new_slug: str, *, storage: Storage | None = None, say: Say | None = None
) -> RestoreResult:
    """Recreate the institution in `archive` on subdomain `new_slug` (schema, public rows, media)."""
    storage = default_storage if storage is None else storage
    say = say or (lambda message: None)
    connection.set_schema_to_public()
    new_slug = normalize_subdomain(new_slug)
    problem = subdomain_problem(new_slug)
    if problem:
        raise BackupError(problem)
    schema = schema_name_for(new_slug)

    with tarfile.open(archive) as tar:
        manifest = _json_member(tar, MANIFEST)
        if manifest.get("format") != FORMAT_VERSION:
            raise BackupError(f"Backup format {manifest.get('format')} is not one this version reads.")
        public = _json_member(tar, PUBLIC)
        backup_migrations = {tuple(pair) for pair in manifest["migrations"]}
        template_migrations = _template_migrations()
        unknown = sorted(backup_migrations - template_migrations)
        if unknown:
            names = ", ".join(f"{app}.{name}" for app, name in unknown[:5])
            raise BackupError(f"The backup has migrations this code does not know ({names}): update first.")
        with schema_context(schema):
            leftovers = next(media_names(storage), None)
        if leftovers is not None:
            raise BackupError(f"Media prefix {schema}/ is not empty (it holds {leftovers}): clear it first.")

        notes: list[str] = []
        saved: list[str] = []
        institution = None
        with tempfile.TemporaryDirectory(prefix="peerlearn-restore-") as work:
            dump = Path(work) / DUMP
            with tar.extractfile(DUMP) as source, dump.open("wb") as target:
                shutil.copyfileobj(source, target, CHUNK)
            say(f"Restoring schema {manifest['schema']} as {schema}…")
            _restore_schema(dump, original=manifest["schema"], target=schema)
        try:
            institution = _restore_public_rows(public, slug=new_slug, schema=schema, notes=notes)
            with schema_context(schema):
                for item in manifest["media"]:
                    member = tar.extractfile(MEDIA + item["name"])
                    reader = _Hashing(member)
                    name = storage.save(item["name"], File(reader, name=item["name"]))
                    saved.append(name)
                    if name != item["name"] or reader.sha256.hexdigest() != item["sha256"]:
                        raise BackupError(f"Media file {item['name']} did not restore intact.")
            say(f"Copied {len(saved)} media files.")
            missing = template_migrations - backup_migrations
            if missing:
                say(f"Applying {len(missing)} migrations made since the backup…")
                call_command("migrate_schemas", schema_name=schema, interactive=False, verbosity=0)
            counts = table_counts(schema)
            expected = manifest["table_counts"]
            different = {t: (n, counts.get(t)) for t, n in expected.items() if counts.get(t) != n}
            if different and not missing:
                raise BackupError(f"Row counts differ after the restore (backup, restored): {different}")
        except BaseException:
            _undo(institution, schema, saved, storage)
            raise
    return RestoreResult(institution=institution, table_counts=counts, media_files=len(saved), notes=notes)


def _undo(institution: Institution | None, schema: str, saved: list[str], storage: Storage) -> None:
    """Remove what a failed restore made: media, public rows, schema."""
    connection.set_schema_to_public()
    with schema_context(schema):
        for name in saved:
            storage.delete(name)
    restored = Institution.objects.filter(pk=institution.pk).first() if institution is not None else None
    if restored is not None:
        restored.delete(force_drop=True)
    if schema_exists(schema):
        with connection.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA {quote_schema_name(schema)} CASCADE")
