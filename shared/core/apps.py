from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "shared.core"
    label = "core"
