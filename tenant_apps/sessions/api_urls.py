"""Mentoring API under /api/v1/."""

from .apis import availability, bookings, directory, extras, groups, live

urlpatterns = [
    *directory.urlpatterns,
    *availability.urlpatterns,
    *bookings.urlpatterns,
    *groups.urlpatterns,
    *extras.urlpatterns,
    *live.urlpatterns,
]
