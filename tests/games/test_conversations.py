from __future__ import annotations

import uuid

import pytest

from games import selectors, services
from games.models import Conversation


@pytest.fixture
def conversation(owner, open_game):
    return services.conversation_create(owner=owner, game=open_game, system_prompt="Be a DM")


def test_it_creates_with_defaults(conversation):
    assert conversation.history_limit == 20 and conversation.tokens_used == 0


@pytest.mark.parametrize("who,visible", [("owner", True), ("friend", True), ("outsider", False)])
def test_it_shows_a_conversation_to_owner_and_invited_players(
    conversation, friend, who, visible, request
):
    services.conversation_invite(conversation=conversation, user=friend)
    user = request.getfixturevalue(who)
    if visible:
        assert (
            selectors.conversation_get_for_user(user=user, conversation_id=conversation.id)
            == conversation
        )
    else:
        with pytest.raises(Conversation.DoesNotExist):
            selectors.conversation_get_for_user(user=user, conversation_id=conversation.id)


def test_it_treats_a_malformed_or_unknown_id_as_missing(owner):
    for bad in ["nope", str(uuid.uuid4())]:
        with pytest.raises(Conversation.DoesNotExist):
            selectors.conversation_get_for_user(user=owner, conversation_id=bad)


def test_it_adds_turns_and_counts_tokens(conversation, owner, friend):
    services.conversation_add_turns(
        conversation=conversation, user_content="hi", author=owner, reply_content="hello", tokens=10
    )
    services.conversation_add_turns(
        conversation=conversation,
        user_content="go",
        author=friend,
        reply_content="you go",
        tokens=5,
    )
    assert conversation.tokens_used == 15
    history = selectors.conversation_history(conversation=conversation, limit=3)
    assert [(m.role, m.content) for m in history] == [
        ("assistant", "hello"),
        ("user", "go"),
        ("assistant", "you go"),
    ]
    assert history[1].author == friend


def test_it_deletes(conversation):
    services.conversation_delete(conversation=conversation)
    assert not Conversation.objects.exists()
