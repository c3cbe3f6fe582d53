from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "tenant_apps.accounts"
    label = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        # Sign-in, sign-out and failed sign-in: lockout counters and the audit log.
        from . import checks, security  # noqa: F401  (the system check; the sign-in receivers)
