"""Restore an institution's backup as a new institution on another subdomain."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from tenants.backup import BackupError, institution_restore


class Command(BaseCommand):
    help = (
        "Recreate the institution of a backup (manage.py institution_backup) on a new subdomain: "
        "a fresh schema, its public rows and its media under the new prefix (docs/operations.md#backups)."
    )

    def add_arguments(self, parser):
        parser.add_argument("archive", type=Path, help="The .tar written by institution_backup.")
        parser.add_argument("--as", dest="new_slug", required=True, help="The new subdomain.")

    def handle(self, *args, **options):
        if not options["archive"].is_file():
            raise CommandError(f"{options['archive']} is not a file.")
        try:
            result = institution_restore(options["archive"], options["new_slug"], say=self.stdout.write)
        except BackupError as error:
            raise CommandError(str(error)) from None
        for note in result.notes:
            self.stdout.write(self.style.WARNING(note))
        institution = result.institution
        rows = sum(result.table_counts.values())
        self.stdout.write(
            self.style.SUCCESS(
                f"{institution.name} restored at {settings.SITE_SCHEME}://{institution.slug}."
                f"{settings.PLATFORM_DOMAIN}{settings.SITE_PORT_SUFFIX}/ (schema {institution.schema_name}): "
                f"{len(result.table_counts)} tables, {rows:,} rows, {result.media_files} media files."
            )
        )
