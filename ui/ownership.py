"""Whose conversation is it: the one rule the chat, the named endpoints and /v1 all apply.

With logins or API keys every request acts as one user and may read, continue or rate only that
user's conversations. Without them (one person on their own machine) every conversation is theirs.
A conversation that does not exist and one that belongs to someone else get the same answer, so
the refusal does not tell a caller which ids exist.
"""
from __future__ import annotations

from typing import Any

NO_SUCH_CONVERSATION = "No such conversation for this user."


class NotYourConversation(LookupError):
    """Refused: unknown, or another user's. The message never says which."""

    def __init__(self, message: str = NO_SUCH_CONVERSATION):
        super().__init__(message)

    def __str__(self) -> str:  # LookupError would quote it like a KeyError
        return self.args[0]


def own_conversation(bot: Any, conversation_id: str, user: str | None) -> Any:
    """The conversation (with its messages) if `user` may see it; else `NotYourConversation`."""
    try:
        detail = bot.conversation(conversation_id)
    except KeyError:  # unknown id, or logging is off
        detail = None
    if detail is None or (user is not None and detail.user != user):
        raise NotYourConversation()
    return detail


def check_message_owner(bot: Any, message_id: str, user: str | None) -> None:
    """Refuse a rating or correction of an answer in someone else's conversation.

    An unknown message id passes here: storing the feedback then reports it plainly.
    """
    if user is None:
        return
    conversation_id = bot.conversation_of(message_id)
    if conversation_id is not None:
        own_conversation(bot, conversation_id, user)
