from django.apps import AppConfig


class RemindersConfig(AppConfig):
    name = "shared.reminders"
    label = "reminders"
    verbose_name = "Reminder schedule"
