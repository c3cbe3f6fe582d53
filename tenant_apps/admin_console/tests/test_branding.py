"""Theme & branding: admins only; saves are audited and reach the pages; images are checked;
the contrast warning; custom CSS and the footer switch only with the plan's features; B unaffected."""

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django_tenants.utils import tenant_context
from PIL import Image

from shared.core.testing import HostClient, host_of, make_user, sign_in
from shared.platform_billing.models import Plan, Subscription
from tenant_apps.accounts.models import User
from tenant_apps.admin_console.models import AuditEntry
from tenants.directory import directory
from tenants.models import Institution


@pytest.fixture
def admin(institution_a):
    user = make_user(institution_a, email="brand-admin@a.example", role=User.Role.ADMIN)
    client = HostClient(host_of(institution_a))
    sign_in(client, user.email)
    return client


@pytest.fixture
def learner(institution_a):
    user = make_user(institution_a, email="brand-learner@a.example", role=User.Role.LEARNER)
    client = HostClient(host_of(institution_a))
    sign_in(client, user.email)
    return client


def on_plan(institution, **features) -> Plan:
    plan = Plan.objects.create(
        code=f"brand-{institution.slug}",
        name="Basic",
        monthly_price_minor=100,
        yearly_price_minor=1000,
        **features,
    )
    Subscription.objects.filter(institution=institution).update(plan=plan)
    return plan


def branding_post(**overrides) -> dict:
    data = {
        "theme": "classic",
        "primary_color": "#0b3d91",
        "accent_color": "#c9a227",
        "font": "merriweather",
        "color_scheme": "light",
        "custom_css": "",
    }
    return {**data, **overrides}


@pytest.fixture
def save(admin, django_capture_on_commit_callbacks):
    """Post the branding form as the admin, running what waits for the commit (the directory is
    told, old files go); this process then forgets what it cached, as it would on its next check."""

    def post(data: dict, **kwargs):
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            response = admin.post("/manage/branding/", data, **kwargs)
        if response.status_code == 302 or kwargs.get("follow"):
            assert directory.invalidate in callbacks or response.status_code == 200
        directory.forget()
        return response

    return post


def png(size=(120, 40), color=(10, 60, 140, 255), fmt="PNG", name="logo.png") -> SimpleUploadedFile:
    buffer = io.BytesIO()
    Image.new("RGBA", size, color).save(buffer, format=fmt)
    return SimpleUploadedFile(name, buffer.getvalue(), content_type="image/png")


def test_only_admins_see_the_branding_page_and_its_preview(learner, admin):
    assert learner.get("/manage/branding/").status_code == 403
    assert learner.get("/manage/branding/preview/").status_code == 403
    assert learner.post("/manage/branding/", branding_post()).status_code == 403
    assert HostClient(learner.host).get("/manage/branding/").status_code == 302  # to the login page
    page = admin.get("/manage/branding/")
    assert page.status_code == 200 and 'x-data="brandingEditor"' in page.content.decode()


def test_a_save_changes_the_site_and_is_audited(institution_a, admin, learner, save):
    response = save(branding_post(), follow=True)
    assert "Branding saved." in response.content.decode()
    saved = Institution.objects.get(pk=institution_a.pk)
    assert (saved.theme, saved.primary_color, saved.font) == ("classic", "#0b3d91", "merriweather")
    with tenant_context(institution_a):
        entry = AuditEntry.objects.get(action="branding.update")
        assert entry.changes["theme"] == ["default", "classic"]
        assert entry.changes["primary_color"] == [institution_a.primary_color, "#0b3d91"]
        assert "brand-admin@a.example" in entry.actor_label
    page = learner.get("/").content.decode()
    assert 'data-layout="classic"' in page and "--brand-primary:#0b3d91" in page
    assert "vendor/fonts/fonts.css" in page and '"Merriweather"' not in page  # stack: Merriweather, Georgia…
    assert "--brand-font:Merriweather" in page


def test_every_theme_renders_with_the_dark_scheme(institution_a, admin, learner, save):
    for theme in ("default", "classic", "minimal"):
        save(branding_post(theme=theme, color_scheme="dark"))
        page = learner.get("/").content.decode()
        assert f'data-layout="{theme}"' in page and 'data-scheme="dark"' in page


def test_the_preview_renders_unsaved_choices_and_saves_nothing(institution_a, admin):
    response = admin.get("/manage/branding/preview/?theme=minimal&primary_color=%23aa0000&color_scheme=dark")
    page = response.content.decode()
    assert response.status_code == 200 and response["X-Frame-Options"] == "SAMEORIGIN"
    assert (
        'data-layout="minimal"' in page and "--brand-primary:#aa0000" in page and 'data-scheme="dark"' in page
    )
    # Bad values fall back to the saved ones.
    page = admin.get("/manage/branding/preview/?theme=../../x&primary_color=red;}</style>").content.decode()
    assert 'data-layout="default"' in page and "</style><" not in page.split("<style>")[1][:200]
    assert Institution.objects.get(pk=institution_a.pk).theme == "default"


def test_low_contrast_primary_colour_warns(institution_a, admin, save):
    response = save(branding_post(primary_color="#ffeb3b"), follow=True)
    page = response.content.decode()
    assert "Branding saved." in page and "The primary colour on white has a contrast of 1.2:1" in page
    assert response.context["warnings"]
    ok = save(branding_post(primary_color="#0b3d91"), follow=True)
    assert ok.context["warnings"] == [] and "contrast of" not in str(list(ok.context["messages"]))


def test_logo_and_favicon_are_reencoded_under_the_institutions_media(institution_a, admin, learner, save):
    data = branding_post(logo=png((1200, 400)), favicon=png((32, 32), name="f.png"))
    assert save(data).status_code == 302
    saved = Institution.objects.get(pk=institution_a.pk)
    assert saved.logo.name.startswith("branding/") and saved.favicon.name.startswith("branding/")
    with tenant_context(institution_a):
        with saved.logo.open("rb") as file:
            assert Image.open(file).size == (600, 200)
        assert institution_a.schema_name in saved.logo.path
        with saved.favicon.open("rb") as file:
            assert Image.open(file).size == (64, 64)
    page = learner.get("/").content.decode()
    assert '<link rel="icon" href="' in page and saved.favicon.url in page


def test_a_file_that_is_not_an_image_is_a_form_error(institution_a, admin, save):
    fake = SimpleUploadedFile("logo.png", b"<svg onload=alert(1)>", content_type="image/png")
    response = save(branding_post(logo=fake))
    assert response.status_code == 200 and "not an image we can read" in response.content.decode()
    assert not Institution.objects.get(pk=institution_a.pk).logo


def test_custom_css_is_sanitised_and_a_hostile_one_renders_no_script(institution_a, admin, learner, save):
    hostile = "p{color:red}</style><script>alert(1)</script><style>@import url(https://evil.example/x.css);"
    assert save(branding_post(custom_css=hostile)).status_code == 302
    stored = Institution.objects.get(pk=institution_a.pk).custom_css
    assert "<" not in stored and "evil.example" not in stored
    page = learner.get("/").content.decode()
    css = page.split('<style id="institution-css">')[1].split("</style>")[0]
    assert "p{color:red;}" in css and "<" not in css
    assert "alert(1)</script>" not in page and "evil.example" not in page
    # Even text that reached the database some other way is sanitised when it is rendered.
    Institution.objects.filter(pk=institution_a.pk).update(custom_css="</style><script>alert(2)</script>")
    directory.forget()
    assert "<script>alert(2)" not in learner.get("/").content.decode()


def test_oversized_custom_css_is_a_form_error(institution_a, admin, save):
    response = save(branding_post(custom_css="p{color:red}" * 2000))
    assert response.status_code == 200 and "limited to 20 KB" in response.content.decode()


def test_custom_css_and_the_footer_switch_need_the_plan_features(institution_a, admin, learner, save):
    on_plan(institution_a, custom_css=False, remove_branding=False)
    page = admin.get("/manage/branding/").content.decode()
    assert "Comes with plans that include custom CSS." in page
    # Disabled fields ignore what is posted; nothing about them changes.
    save(branding_post(custom_css="p{color:red}", hide_powered_by="on"))
    saved = Institution.objects.get(pk=institution_a.pk)
    assert saved.custom_css == "" and saved.hide_powered_by is False
    assert "Powered by" in learner.get("/").content.decode()

    Plan.objects.filter(code=f"brand-{institution_a.slug}").update(custom_css=True, remove_branding=True)
    save(branding_post(custom_css="p{color:red}", hide_powered_by="on"))
    saved = Institution.objects.get(pk=institution_a.pk)
    assert saved.custom_css == "p{color:red;}" and saved.hide_powered_by is True
    page = learner.get("/").content.decode()
    assert "Powered by" not in page and '<style id="institution-css">p{color:red;}</style>' in page
    with tenant_context(institution_a):
        first, second = AuditEntry.objects.filter(action="branding.update").order_by("pk")
        assert "custom_css" not in first.changes and "hide_powered_by" not in first.changes
        assert second.changes == {
            "custom_css": ["0 characters", "13 characters"],
            "hide_powered_by": [False, True],
        }
    # Back on a plan without the feature: the stored CSS is no longer applied.
    Plan.objects.filter(code=f"brand-{institution_a.slug}").update(custom_css=False)
    assert "institution-css" not in learner.get("/").content.decode()


def test_institution_b_is_unaffected(institution_a, institution_b, admin, save):
    save(branding_post(theme="minimal", primary_color="#aa0000"))
    page = HostClient(host_of(institution_b)).get("/").content.decode()
    assert 'data-layout="default"' in page and "--brand-primary:#aa0000" not in page
    assert Institution.objects.get(pk=institution_b.pk).theme == "default"
    with tenant_context(institution_b):
        assert not AuditEntry.objects.filter(action="branding.update").exists()


@pytest.mark.parametrize("theme", ["default", "classic", "minimal"])
def test_notification_emails_use_the_themes_email_layout(institution_a, theme):
    from tenant_apps.notifications import services
    from tenant_apps.notifications.email import email_message
    from tenant_apps.notifications.models import Event

    institution_a.theme = theme  # the object tenant_context puts on the connection
    recipient = make_user(institution_a, email="brand-mail@a.example", role=User.Role.LEARNER)
    with tenant_context(institution_a):
        (notification,) = services.notify(
            event=Event.BOOKING_CONFIRMED,
            recipients=[recipient],
            message=services.Message(title="Your session is confirmed", url="/sessions/"),
        )
        message = email_message(notification=notification)
    html = message.alternatives[0][0]
    assert f'data-email-theme="{theme}"' in html and "Your session is confirmed" in html
    assert "Your session is confirmed" in message.body and institution_a.name in message.body
