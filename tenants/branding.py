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


def _may_remove_branding(institution: Institution) -> bool:
    from shared.platform_billing.limits import has_feature
    from shared.platform_billing.models import Feature

    return has_feature(Feature.REMOVE_BRANDING, institution=institution)


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
            theme="default",
        )
    return Branding(
        name=institution.name,
        logo_url=institution.logo.url if institution.logo else "",
        primary_color=institution.primary_color,
        primary_contrast=contrast_color(institution.primary_color),
        accent_color=institution.accent_color,
        is_platform=False,
        show_powered_by=not (institution.hide_powered_by and _may_remove_branding(institution)),
        theme=institution.theme,
    )
