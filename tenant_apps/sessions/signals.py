"""Keep mentors' search documents in step with the names on their accounts."""

from django.conf import settings
from django.db import connection
from django.db.models.signals import post_save
from django.dispatch import receiver
from django_tenants.utils import get_public_schema_name


@receiver(post_save, sender=settings.AUTH_USER_MODEL)
def user_saved(sender, instance, created=False, update_fields=None, **kwargs) -> None:
    if created or connection.schema_name == get_public_schema_name():
        return  # a new account has no mentor profile yet; platform staff have none at all
    if update_fields is not None and "full_name" not in update_fields:
        return
    from .search import mentor_search_refresh

    mentor_search_refresh(user_id=instance.pk)
