from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from usage.models import ModelPrice
from usage.selectors import price_cache_clear


@receiver([post_save, post_delete], sender=ModelPrice, dispatch_uid="usage_price_cache_clear")
def _price_changed(sender, **kwargs) -> None:
    # An edited price applies to the next request in this process at once.
    price_cache_clear()
