"""Provisioning: one service that turns a sign-up into a live institution, all or nothing.

Used by the platform's sign-up page, by `manage.py create_institution` and by the tests.
Every step runs in one database transaction. PostgreSQL's DDL is transactional, so a failure
at any step rolls back the institution row, the cloned schema, the domain and the admin alike.
"""

from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django_tenants.clone import CloneSchema
from django_tenants.utils import schema_exists, tenant_context

from shared.core.errors import ApplicationError
from tenant_apps.accounts.models import User
from tenant_apps.accounts.services import login_link_create

from .models import Domain, Institution
from .pool import schema_claim, schema_pool_fill_soon
from .tasks import admin_email_verification_send
from .validators import normalize_subdomain, schema_name_for, validate_subdomain

ProgressCallback = Callable[[int, int, str], None]


@dataclass
class InstitutionSignup:
    name: str
    subdomain: str
    country: str
    currency: str
    timezone: str
    admin_full_name: str
    admin_email: str
    admin_password: str


@dataclass
class Provisioning:
    """What the steps build up; the result once they all ran."""

    signup: InstitutionSignup
    admin_password_hash: str = ""
    institution: Institution | None = None
    domain: Domain | None = None
    admin: User | None = None
    login_token: str = ""
    # Whether the schema was a ready one from the pool (rather than a clone of the template).
    schema_from_pool: bool = False

    @property
    def host(self) -> str:
        return self.domain.domain if self.domain else ""


def domain_for(subdomain: str) -> str:
    return f"{subdomain}.{settings.PLATFORM_DOMAIN}"


def subdomain_problem(subdomain: str) -> str | None:
    """Why `subdomain` cannot be had (malformed, reserved or taken), or None if it is free."""
    try:
        validate_subdomain(subdomain)
    except ValidationError as exc:
        return exc.messages[0]
    schema_name = schema_name_for(subdomain)
    if (
        Institution.objects.filter(slug=subdomain).exists()
        or Domain.objects.filter(domain=domain_for(subdomain)).exists()
        or schema_exists(schema_name, case_sensitive=False)
    ):
        return f"“{subdomain}” is already taken. Please choose another name."
    return None


def _field_errors(
    exc: ValidationError, renames: dict[str, str], default_field: str = "__all__"
) -> ApplicationError:
    """A model's validation errors under the names of the sign-up form's fields."""
    errors = exc.message_dict if hasattr(exc, "error_dict") else {default_field: exc.messages}
    fields = {renames.get(name, name): messages for name, messages in errors.items()}
    first = next(iter(fields.values()))[0]
    return ApplicationError(first, fields=fields)


# --- Steps: each takes the Provisioning and adds to it ---------------------------------------


def _check_details(p: Provisioning) -> None:
    s = p.signup
    s.subdomain = normalize_subdomain(s.subdomain)
    s.admin_email = User.objects.normalize_email(s.admin_email).strip().lower()
    problem = subdomain_problem(s.subdomain)
    if problem:
        raise ApplicationError(problem, code="subdomain_unavailable", fields={"subdomain": [problem]})
    institution = Institution(
        name=s.name.strip(),
        slug=s.subdomain,
        schema_name=schema_name_for(s.subdomain),
        country=s.country,
        currency=s.currency,
        timezone=s.timezone,
    )
    try:
        # The subdomain was found free just above, and the unique constraints decide any race.
        institution.full_clean(exclude=["schema_name"], validate_unique=False)
    except ValidationError as exc:
        raise _field_errors(exc, {"slug": "subdomain"}) from None
    admin = User(email=s.admin_email, full_name=s.admin_full_name.strip(), timezone=s.timezone)
    try:
        admin.full_clean(exclude=["password"], validate_unique=False)
    except ValidationError as exc:
        raise _field_errors(exc, {"email": "admin_email", "full_name": "admin_full_name"}) from None
    try:
        validate_password(s.admin_password, user=admin)
    except ValidationError as exc:
        raise _field_errors(exc, {}, default_field="admin_password") from None
    p.institution = institution
    # Hashing is deliberately slow; it happens before anything is written.
    p.admin_password_hash = make_password(s.admin_password)


def _create_institution(p: Provisioning) -> None:
    p.institution.save()


def _create_schema(p: Provisioning) -> None:
    # A ready schema from the pool is renamed (about a millisecond); with none ready, the template,
    # which holds every tenant table, migration record, content type and permission, is cloned.
    p.schema_from_pool = schema_claim(schema_name=p.institution.schema_name)
    if not p.schema_from_pool:
        CloneSchema().clone_schema(settings.TENANT_BASE_SCHEMA, p.institution.schema_name, "DATA")
    schema_pool_fill_soon()


def _create_domain(p: Provisioning) -> None:
    # The platform's own subdomain needs no proof.
    p.domain = Domain.objects.create(
        domain=domain_for(p.institution.slug),
        tenant=p.institution,
        is_primary=True,
        verified_at=timezone.now(),
    )


def _create_admin(p: Provisioning) -> None:
    s = p.signup
    with tenant_context(p.institution):
        p.admin = User.objects.create(
            email=s.admin_email,
            full_name=s.admin_full_name.strip(),
            password=p.admin_password_hash,
            timezone=s.timezone,
            role=User.Role.ADMIN,
            is_staff=True,
            is_superuser=True,
        )
    institution, admin_id = p.institution, p.admin.pk

    def send_verification() -> None:
        # A worker sends it (in the institution's schema): a mail server's answer is not worth
        # keeping the new admin waiting for.
        with tenant_context(institution):
            admin_email_verification_send.delay(admin_id)

    transaction.on_commit(send_verification)


def _start_trial(p: Provisioning) -> None:
    from shared.platform_billing.services import trial_start

    trial_start(institution=p.institution)


def _create_login_link(p: Provisioning) -> None:
    with tenant_context(p.institution):
        p.login_token = login_link_create(user=p.admin)


@dataclass(frozen=True)
class Step:
    label: str
    run: Callable[[Provisioning], None]


STEPS: tuple[Step, ...] = (
    Step("Checking the details", _check_details),
    Step("Creating the institution", _create_institution),
    Step("Creating its database schema", _create_schema),
    Step("Adding its domain", _create_domain),
    # The public schema's rows first, then the new schema's: one search_path switch fewer.
    Step("Starting the free trial", _start_trial),
    Step("Creating the first administrator", _create_admin),
    Step("Preparing the administrator's sign-in link", _create_login_link),
)


def institution_provision(
    *, signup: InstitutionSignup, progress: ProgressCallback | None = None
) -> Provisioning:
    """Create a ready-to-serve institution with its first admin, or nothing at all.

    Raises ApplicationError (with per-field messages) for anything the person can correct.
    """
    p = Provisioning(signup=signup)
    connection.set_schema_to_public()
    try:
        with transaction.atomic():
            for number, step in enumerate(STEPS, start=1):
                if progress:
                    progress(number, len(STEPS), step.label)
                step.run(p)
    except IntegrityError:
        # Someone took the same subdomain a moment earlier.
        message = f"“{signup.subdomain}” is already taken. Please choose another name."
        raise ApplicationError(
            message, code="subdomain_unavailable", fields={"subdomain": [message]}
        ) from None
    finally:
        connection.set_schema_to_public()
    return p
