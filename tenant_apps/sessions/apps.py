from django.apps import AppConfig


class MentoringConfig(AppConfig):
    name = "tenant_apps.sessions"
    # "sessions" is django.contrib.sessions' label.
    label = "mentoring"
    verbose_name = "Mentoring"

    def ready(self) -> None:
        from . import signals  # noqa: F401
