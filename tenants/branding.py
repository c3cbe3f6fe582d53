"""What the theme needs to know about the institution whose site it renders."""

from dataclasses import dataclass

from django.conf import settings

from .models import Institution

PLATFORM_PRIMARY = "#4f46e5"
PLATFORM_ACCENT = "#f59e0b"


def contrast_color(hex_color: str) -> str:
    """Black or white, whichever reads better on `hex_color` (WCAG relative luminance)."""
    channels = [int(hex_color[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    # Contrast with white vs with near-black (#111111, luminance ≈ 0.0056).
    return "#ffffff" if (1.05 / (luminance + 0.05)) >= ((luminance + 0.05) / 0.0556) else "#111111"


THEMES = tuple(Institution.Theme.values)
DEFAULT_THEME = Institution.Theme.DEFAULT

# CSS font stacks for Institution.font; the faces are vendored in static/vendor/fonts/.
SYSTEM_FONT_STACK = (
    'ui-sans-serif, system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, '
    '"Noto Sans", sans-serif'
)
FONT_STACKS = {
    Institution.Font.SYSTEM: SYSTEM_FONT_STACK,
    Institution.Font.INTER: f'"Inter", {SYSTEM_FONT_STACK}',
    Institution.Font.SOURCE_SANS: f'"Source Sans 3", {SYSTEM_FONT_STACK}',
    Institution.Font.MERRIWEATHER: 'Merriweather, Georgia, Cambria, "Times New Roman", serif',
}


def theme_name(value: str | None) -> str:
    """A known theme's directory name (anything else falls back to the default theme)."""
    return value if value in THEMES else DEFAULT_THEME


def theme_base(theme: str | None) -> str:
    return f"themes/{theme_name(theme)}/base.html"


def theme_email_layout(theme: str | None, kind: str = "html") -> str:
    return f"themes/{theme_name(theme)}/email/base.{'txt' if kind == 'txt' else 'html'}"


def font_stack(font: str | None) -> str:
    return FONT_STACKS.get(font or "", SYSTEM_FONT_STACK)


@dataclass(frozen=True)
class Branding:
    name: str
    logo_url: str
    primary_color: str
    primary_contrast: str
    accent_color: str
    is_platform: bool
    show_powered_by: bool
    theme: str
    favicon_url: str = ""
    font: str = Institution.Font.SYSTEM
    color_scheme: str = Institution.ColorScheme.LIGHT
    # Already sanitised (tenants.css_sanitizer), and only on plans with the custom CSS feature.
    custom_css: str = ""

    @property
    def accent_contrast(self) -> str:
        return contrast_color(self.accent_color)

    @property
    def font_stack(self) -> str:
        return font_stack(self.font)

    @property
    def uses_vendored_font(self) -> bool:
        return self.font != Institution.Font.SYSTEM

    @property
    def base_template(self) -> str:
        return theme_base(self.theme)

    @property
    def email_layout(self) -> str:
        return theme_email_layout(self.theme)

    @property
    def email_layout_txt(self) -> str:
        return theme_email_layout(self.theme, "txt")


def _plan_features(institution: Institution) -> set[str]:
    """The features of the institution's plan that branding depends on (one query)."""
    from shared.platform_billing.limits import subscription_of
    from shared.platform_billing.models import Feature

    wanted = (Feature.REMOVE_BRANDING, Feature.CUSTOM_CSS)
    subscription = subscription_of(institution)
    if subscription is None:
        return set(wanted)
    return {feature for feature in wanted if subscription.plan.has(feature)}


def branding_for(institution: Institution | None) -> Branding:
    if institution is None or institution.is_public:
        return Branding(
            name=settings.PLATFORM_NAME,
            logo_url="",
            primary_color=PLATFORM_PRIMARY,
            primary_contrast=contrast_color(PLATFORM_PRIMARY),
            accent_color=PLATFORM_ACCENT,
            is_platform=True,
            show_powered_by=False,
            theme=DEFAULT_THEME,
        )
    from shared.platform_billing.models import Feature

    from .css_sanitizer import sanitize_css_or_empty

    features = _plan_features(institution)
    return Branding(
        name=institution.name,
        logo_url=institution.logo.url if institution.logo else "",
        primary_color=institution.primary_color,
        primary_contrast=contrast_color(institution.primary_color),
        accent_color=institution.accent_color,
        is_platform=False,
        show_powered_by=not (institution.hide_powered_by and Feature.REMOVE_BRANDING in features),
        theme=theme_name(institution.theme),
        favicon_url=institution.favicon.url if institution.favicon else "",
        font=institution.font,
        color_scheme=institution.color_scheme,
        custom_css=sanitize_css_or_empty(institution.custom_css) if Feature.CUSTOM_CSS in features else "",
    )
