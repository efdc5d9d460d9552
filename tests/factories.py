from __future__ import annotations

import factory
from django.utils import timezone

from accounts.models import ApiToken, Invite, User, hash_token


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"player{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", "correct horse battery")

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class InviteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Invite

    created_by = factory.SubFactory(UserFactory)
    max_uses = 1


class ApiTokenFactory(factory.django.DjangoModelFactory):
    """Builds a token; the secret is on `.secret` of the returned object."""

    class Meta:
        model = ApiToken

    owner = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"token {n}")

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        secret, prefix = ApiToken.generate_secret()
        kwargs.setdefault("prefix", prefix)
        kwargs.setdefault("token_hash", hash_token(secret))
        token = super()._create(model_class, *args, **kwargs)
        token.secret = secret
        return token


def now():
    return timezone.now()
