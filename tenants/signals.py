"""Keep every process's host directory in step with institutions and domains."""

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .models import Domain, Institution


@receiver([post_save, post_delete], sender=Institution)
@receiver([post_save, post_delete], sender=Domain)
def directory_changed(**kwargs) -> None:
    from .directory import directory

    transaction.on_commit(directory.invalidate)
