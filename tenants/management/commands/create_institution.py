"""Provision an institution from the command line, showing each step as it happens."""

import getpass
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from shared.core.errors import ApplicationError
from tenants.services import InstitutionSignup, institution_provision


class Command(BaseCommand):
    help = "Create an institution (schema, domain, first admin) on <subdomain>.PLATFORM_DOMAIN."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True)
        parser.add_argument("--subdomain", required=True)
        parser.add_argument("--country", default="US", help="ISO 3166 code, e.g. GB")
        parser.add_argument("--currency", default="USD", help="ISO 4217 code, e.g. GBP")
        parser.add_argument("--timezone", default="UTC")
        parser.add_argument("--admin-name", required=True)
        parser.add_argument("--admin-email", required=True)
        parser.add_argument("--admin-password", help="Asked for when not given.")

    def handle(self, *args, **options):
        password = options["admin_password"] or getpass.getpass("Password for the first admin: ")
        signup = InstitutionSignup(
            name=options["name"],
            subdomain=options["subdomain"],
            country=options["country"].upper(),
            currency=options["currency"].upper(),
            timezone=options["timezone"],
            admin_full_name=options["admin_name"],
            admin_email=options["admin_email"],
            admin_password=password,
        )
        started = time.perf_counter()

        def progress(number: int, total: int, label: str) -> None:
            bar = "#" * number + "-" * (total - number)
            self.stdout.write(f"[{bar}] {number}/{total} {label}…")

        try:
            result = institution_provision(signup=signup, progress=progress)
        except ApplicationError as error:
            details = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in error.fields.items())
            raise CommandError(details or error.message) from None
        elapsed = (time.perf_counter() - started) * 1000
        port = settings.SITE_PORT_SUFFIX
        self.stdout.write(
            self.style.SUCCESS(
                f"{result.institution.name} is live at {settings.SITE_SCHEME}://{result.host}{port}/ "
                f"(schema {result.institution.schema_name}, {elapsed:.0f} ms). "
                f"Admin: {result.admin.email}"
            )
        )
