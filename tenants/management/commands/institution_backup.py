"""Back up one institution: its schema, its public rows and its media, in one tar file."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from tenants.backup import BackupError, institution_backup


class Command(BaseCommand):
    help = (
        "Write <directory>/<slug>-<time>.tar: pg_dump of the institution's schema, its public rows, "
        "its media files and a manifest (docs/operations.md#backups)."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug", help="The institution's subdomain.")
        parser.add_argument("directory", type=Path, help="Where to write the backup (created if missing).")

    def handle(self, *args, **options):
        try:
            result = institution_backup(options["slug"], options["directory"], say=self.stdout.write)
        except BackupError as error:
            raise CommandError(str(error)) from None
        manifest = result.manifest
        rows = sum(manifest["table_counts"].values())
        self.stdout.write(
            self.style.SUCCESS(
                f"{result.path} ({result.path.stat().st_size:,} bytes): {len(manifest['table_counts'])} "
                f"tables, {rows:,} rows, {len(manifest['media'])} media files."
            )
        )
