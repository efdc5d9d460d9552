"""Deactivating a user, wherever it happens, ends their sessions at once.

The admin's list editing, its change form and `user_deactivate` all save the
user; watching the save catches every one of them.
"""

from __future__ import annotations

from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver

from accounts.models import User


def _touches_is_active(update_fields) -> bool:
    return update_fields is None or "is_active" in update_fields


@receiver(pre_save, sender=User, dispatch_uid="accounts_remember_is_active")
def remember_is_active(sender, instance: User, update_fields=None, **kwargs) -> None:
    if instance.pk is None or not _touches_is_active(update_fields):
        instance._was_active = None
        return
    instance._was_active = (
        User.objects.filter(pk=instance.pk).values_list("is_active", flat=True).first()
    )


@receiver(post_save, sender=User, dispatch_uid="accounts_end_sessions_on_deactivate")
def end_sessions_on_deactivate(sender, instance: User, created: bool, **kwargs) -> None:
    if created or instance.is_active or not getattr(instance, "_was_active", None):
        return
    from accounts.services import user_sessions_end

    user_sessions_end(user=instance)
