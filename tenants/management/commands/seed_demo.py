"""Demo data for `make run`: two visibly different institutions with people. Safe to re-run."""

import io

from django.core.files.base import ContentFile
from django.core.management.base import BaseCommand
from django.db import connection
from django.utils import timezone
from django_tenants.utils import tenant_context
from PIL import Image, ImageDraw, ImageFont

from tenant_apps.accounts.models import User
from tenant_apps.sessions.demo import seed_mentoring
from tenants.models import Institution
from tenants.services import InstitutionSignup, institution_provision

DEMO_PASSWORD = "peerlearn-demo"
STAFF_EMAIL = "staff@peerlearn.localhost"

INSTITUTIONS = [
    {
        "signup": InstitutionSignup(
            name="Northwind University",
            subdomain="northwind",
            country="GB",
            currency="GBP",
            timezone="Europe/London",
            admin_full_name="Nora Whitfield",
            admin_email="admin@northwind.edu",
            admin_password=DEMO_PASSWORD,
        ),
        "branding": {
            "primary_color": "#1e3a5f",
            "accent_color": "#c9a227",
            "signup_policy": Institution.SignupPolicy.EMAIL_DOMAINS,
            "signup_email_domains": ["northwind.edu"],
        },
        "logo": ("NU", "#1e3a5f", "#c9a227"),
        "people": [
            ("ada@northwind.edu", "Ada Lovelace", User.Role.MENTOR, User.MentorStatus.APPROVED),
            ("alan@northwind.edu", "Alan Turing", User.Role.MENTOR, User.MentorStatus.APPROVED),
            ("maria@northwind.edu", "Maria Gaetana Agnesi", User.Role.MENTOR, User.MentorStatus.PENDING),
            ("sam@northwind.edu", "Sam Patel", User.Role.LEARNER, User.MentorStatus.NONE),
            ("jo@northwind.edu", "Jo Okafor", User.Role.LEARNER, User.MentorStatus.NONE),
        ],
    },
    {
        "signup": InstitutionSignup(
            name="Lambda Bootcamp",
            subdomain="lambda",
            country="US",
            currency="USD",
            timezone="America/Los_Angeles",
            admin_full_name="Leo Martinez",
            admin_email="admin@lambda.dev",
            admin_password=DEMO_PASSWORD,
        ),
        "branding": {
            "primary_color": "#6d28d9",
            "accent_color": "#f97316",
            "signup_policy": Institution.SignupPolicy.OPEN,
            "signup_email_domains": [],
        },
        "logo": ("LB", "#6d28d9", "#f97316"),
        "people": [
            ("grace@lambda.dev", "Grace Hopper", User.Role.MENTOR, User.MentorStatus.APPROVED),
            ("linus@lambda.dev", "Linus Berg", User.Role.MENTOR, User.MentorStatus.APPROVED),
            ("lin@lambda.dev", "Lin Chen", User.Role.LEARNER, User.MentorStatus.NONE),
            ("priya@lambda.dev", "Priya Nair", User.Role.LEARNER, User.MentorStatus.NONE),
        ],
    },
]


def logo_png(text: str, background: str, accent: str) -> bytes:
    image = Image.new("RGB", (160, 160), background)
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((8, 8, 152, 152), radius=28, outline=accent, width=8)
    try:
        font = ImageFont.load_default(size=72)
    except TypeError:  # very old Pillow
        font = ImageFont.load_default()
    box = draw.textbbox((0, 0), text, font=font)
    x = (160 - (box[2] - box[0])) / 2 - box[0]
    y = (160 - (box[3] - box[1])) / 2 - box[1]
    draw.text((x, y), text, fill=accent, font=font)
    output = io.BytesIO()
    image.save(output, format="PNG")
    return output.getvalue()


class Command(BaseCommand):
    help = "Create (or bring up to date) the demo institutions, their people and a platform staff user."

    def handle(self, *args, **options):
        connection.set_schema_to_public()
        staff, created = User.objects.get_or_create(
            email=STAFF_EMAIL,
            defaults={"full_name": "Platform Staff", "is_staff": True, "is_superuser": True},
        )
        if created:
            staff.set_password(DEMO_PASSWORD)
            staff.save()

        for demo in INSTITUTIONS:
            signup: InstitutionSignup = demo["signup"]
            institution = Institution.objects.filter(slug=signup.subdomain).first()
            if institution is None:
                institution = institution_provision(signup=signup).institution
                self.stdout.write(f"Created {institution.name}.")
            with tenant_context(institution):
                self._brand(institution, demo)
                self._people(demo["people"], timezone_name=signup.timezone)
                self._payments()
                seed_mentoring()
                User.objects.filter(email_verified_at__isnull=True).update(email_verified_at=timezone.now())
        from shared.platform_billing.services import usage_snapshot

        for institution in Institution.objects.exclude(schema_name="public"):
            usage_snapshot(institution=institution)  # the console's figures before the first daily count
        self.stdout.write(self.style.SUCCESS("Demo data is ready."))

    def _payments(self) -> None:
        """Learners pay through the offline sandbox checkout (only where it is enabled)."""
        from django.conf import settings

        from tenant_apps.billing.models import Gateways, pricing_policy

        policy = pricing_policy()
        if settings.BILLING_SANDBOX_ENABLED and policy.gateway == Gateways.NONE:
            policy.gateway = Gateways.SANDBOX
            policy.save()

    def _brand(self, institution: Institution, demo: dict) -> None:
        for name, value in demo["branding"].items():
            setattr(institution, name, value)
        if not institution.logo:
            text, background, accent = demo["logo"]
            institution.logo.save("logo.png", ContentFile(logo_png(text, background, accent)), save=False)
        institution.save()

    def _people(self, people: list[tuple[str, str, str, str]], *, timezone_name: str) -> None:
        for email, full_name, role, mentor_status in people:
            user, created = User.objects.get_or_create(
                email=email,
                defaults={
                    "full_name": full_name,
                    "timezone": timezone_name,
                    "role": role,
                    "mentor_status": mentor_status,
                    "mentor_application": "I teach and love helping people get unstuck."
                    if mentor_status == User.MentorStatus.PENDING
                    else "",
                },
            )
            if created:
                user.set_password(DEMO_PASSWORD)
                user.email_verified_at = user.date_joined
                user.save()
