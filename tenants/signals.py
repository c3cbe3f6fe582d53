"""Keep every process's host directory in step with institutions, domains, subscriptions and plans."""

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .models import Domain, Institution


@receiver([post_save, post_delete], sender=Institution)
@receiver([post_save, post_delete], sender=Domain)
def directory_changed(**kwargs) -> None:
    from .directory import directory

    transaction.on_commit(directory.invalidate)


# The directory also keeps each institution's subscription with its plan (the subscription middleware's).
@receiver([post_save, post_delete], sender="platform_billing.Subscription")
@receiver([post_save, post_delete], sender="platform_billing.Plan")
def subscriptions_changed(instance, **kwargs) -> None:
    from .directory import directory

    # This process reads the new state from now on (also later in this transaction); the others once it
    # is committed. A plan change concerns every subscription on it.
    directory.forget_subscriptions(institution_id=getattr(instance, "institution_id", None))
    transaction.on_commit(directory.invalidate)
