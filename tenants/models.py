"""Institutions (one Postgres schema each) and the host names they answer on."""

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django_tenants.models import DomainMixin, TenantMixin

from .countries import COUNTRY_CHOICES, CURRENCY_CHOICES
from .validators import validate_hex_color, validate_subdomain, validate_timezone


class Institution(TenantMixin):
    class Theme(models.TextChoices):
        # templates/themes/<value>/ holds each theme's layout, partials and email layout.
        DEFAULT = "default", "Modern"
        CLASSIC = "classic", "Classic"
        MINIMAL = "minimal", "Minimal"

    class Font(models.TextChoices):
        # The vendored faces in static/vendor/fonts/ (scripts/vendor_assets.mjs), or the system's.
        SYSTEM = "system", "System default"
        INTER = "inter", "Inter"
        SOURCE_SANS = "source-sans-3", "Source Sans 3"
        MERRIWEATHER = "merriweather", "Merriweather"

    class ColorScheme(models.TextChoices):
        LIGHT = "light", "Light"
        DARK = "dark", "Dark"
        AUTO = "auto", "Follow the visitor's device"

    class SignupPolicy(models.TextChoices):
        OPEN = "open", "Anyone may sign up"
        INVITE_ONLY = "invite_only", "Invitation only"
        EMAIL_DOMAINS = "email_domains", "Only emails of given domains"

    name = models.CharField(max_length=120)
    # The subdomain label under PLATFORM_DOMAIN; schema_name is derived from it.
    slug = models.CharField(max_length=30, unique=True, validators=[validate_subdomain])
    country = models.CharField(max_length=2, choices=COUNTRY_CHOICES)
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES)
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    # How dates and numbers are written on the site (a language tag Django formats know).
    locale = models.CharField(
        max_length=10,
        default="en-gb",
        choices=[
            ("en-gb", "English (UK)"),
            ("en-us", "English (US)"),
            ("en-in", "English (India)"),
            ("en-au", "English (Australia)"),
        ],
    )

    # Branding, applied through CSS variables by the theme.
    theme = models.CharField(max_length=40, choices=Theme.choices, default=Theme.DEFAULT)
    primary_color = models.CharField(max_length=7, default="#1d4ed8", validators=[validate_hex_color])
    accent_color = models.CharField(max_length=7, default="#f59e0b", validators=[validate_hex_color])
    # Stored under the institution's own media prefix (MEDIA_ROOT/<schema>/branding/...).
    logo = models.ImageField(upload_to="branding/", blank=True)
    favicon = models.ImageField(upload_to="branding/", blank=True)
    font = models.CharField(max_length=40, choices=Font.choices, default=Font.SYSTEM)
    color_scheme = models.CharField(max_length=10, choices=ColorScheme.choices, default=ColorScheme.LIGHT)
    # Only applied on plans with the "custom CSS" feature; stored as sanitised by
    # tenants.css_sanitizer.sanitize_css (and sanitised again when rendered).
    custom_css = models.TextField(blank=True)

    # Only honoured on plans with the "remove branding" feature (shared/platform_billing).
    hide_powered_by = models.BooleanField(default=False)
    signup_policy = models.CharField(max_length=20, choices=SignupPolicy.choices, default=SignupPolicy.OPEN)
    signup_email_domains = ArrayField(
        models.CharField(max_length=253),
        default=list,
        blank=True,
        help_text="With the email-domain policy: domains such as northwind.edu.",
    )

    created_at = models.DateTimeField(auto_now_add=True)

    # The provisioning service creates the schema inside its own transaction.
    auto_create_schema = False
    auto_drop_schema = True

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_public(self) -> bool:
        from django_tenants.utils import get_public_schema_name

        return self.schema_name == get_public_schema_name()


class Domain(DomainMixin):
    """A host name serving an institution. The platform's own subdomains are verified when made;
    an institution's own domain is served only once its TXT record proves it (docs/custom-domains.md)."""

    verification_token = models.CharField(max_length=64, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_check_error = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["domain"]

    def __str__(self) -> str:
        return self.domain

    @property
    def is_verified(self) -> bool:
        return self.verified_at is not None


class ReadySchema(models.Model):
    """A migrated schema that belongs to no institution yet: sign-up renames one (tenants/pool.py).

    Not a tenant: nothing that goes through institutions (migrate_schemas, backups, periodic work)
    ever sees it, and no host resolves to it.
    """

    schema_name = models.CharField(max_length=63, unique=True)
    # Which tenant migrations it carries (tenants.pool.migration_fingerprint); only schemas whose
    # fingerprint matches the running code's are handed out.
    migration_fingerprint = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["migration_fingerprint", "id"], name="readyschema_claim_order")]

    def __str__(self) -> str:
        return self.schema_name
