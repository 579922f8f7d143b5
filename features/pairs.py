"""Turn pairs: a prompt turn and the adjacent turn answering it, with per-pair features."""

from collections.abc import Sequence

from features.structs import ContextTurn, Turn, TurnPair, TurnRole
from features.text import char_count, has_digits, has_email, has_question, has_url, word_count
from features.timing import hour_and_weekday, latency
from messagehooks.settings import default

DEFAULT_CONTEXT_TURNS: int = default("context_turns")
"""The declared default of MESSAGEHOOKS_CONTEXT_TURNS (messagehooks/settings.py)."""

BUTTON_TYPE = "button"
"""Message type of a customer's button click."""


def is_pair(prompt_role: TurnRole, response_role: TurnRole) -> bool:
    """Whether two adjacent turns form a pair: different roles, exactly one is the customer.

    bot→customer, agent→customer, customer→bot and customer→agent pair; bot→agent and
    agent→bot do not.
    """
    return prompt_role != response_role and (prompt_role == "customer") != (response_role == "customer")


def awaits_response(role: TurnRole) -> bool:
    """Whether a conversation's last turn of this role yields an unanswered pair."""
    return role != "customer"


def make_pair(
    prompt: Turn,
    response: Turn | None,
    *,
    context: Sequence[Turn],
    pair_index: int,
) -> TurnPair:
    """Build a turn pair and its features.

    Args:
        prompt: The prompt turn.
        response: The turn answering it, or None for an unanswered pair.
        context: The turns preceding the prompt, oldest first (already cut to the wanted size).
        pair_index: Index of the pair within its conversation (0, 1, ...).

    Returns:
        The pair; `pair_id` is ``f"{conversation_id}:{pair_index}"``.
    """
    answered = response is not None
    text = prompt.text
    r = response  # short name: every response field is `... if r else None`
    hour, day = hour_and_weekday(prompt.end_ts)
    return TurnPair(
        pair_id=f"{prompt.conversation_id}:{pair_index}",
        chat_id=prompt.chat_id,
        conversation_id=prompt.conversation_id,
        pair_index=pair_index,
        prompt_role=prompt.role,
        prompt_text=text,
        prompt_types=prompt.types,
        prompt_options=prompt.options,
        prompt_payload=prompt.payload,
        prompt_ts=prompt.end_ts,
        prompt_turn_index=prompt.turn_index,
        prompt_message_ids=prompt.message_ids,
        response_role=r.role if r else None,
        response_text=r.text if r else None,
        response_types=r.types if r else None,
        response_payload=r.payload if r else None,
        response_ts=r.start_ts if r else None,
        response_message_ids=r.message_ids if r else None,
        latency_s=latency(prompt.end_ts, r.start_ts) if r else None,
        answered=answered,
        context=tuple(ContextTurn(role=turn.role, text=turn.text) for turn in context),
        prompt_chars=char_count(text),
        prompt_words=word_count(text),
        response_chars=char_count(r.text) if r else None,
        response_words=word_count(r.text) if r else None,
        prompt_is_button=BUTTON_TYPE in prompt.types,
        response_is_button=BUTTON_TYPE in r.types if r else None,
        prompt_option_count=len(prompt.options),
        hour_of_day=hour,
        weekday=day,
        country=prompt.country,
        channel_id=prompt.channel_id,
        agent_assigned=prompt.agent_assigned,
        prompt_has_question=has_question(text),
        prompt_has_digits=has_digits(text),
        prompt_has_email=has_email(text),
        prompt_has_url=has_url(text),
        response_has_question=has_question(r.text) if r else None,
        response_has_digits=has_digits(r.text) if r else None,
        response_has_email=has_email(r.text) if r else None,
        response_has_url=has_url(r.text) if r else None,
    )


def pair_turns(turns: Sequence[Turn], *, context_turns: int = DEFAULT_CONTEXT_TURNS) -> list[TurnPair]:
    """All pairs of one closed conversation's turns (in order), unanswered last pair included.

    This is the whole-conversation form of what the session builder emits incrementally.

    Args:
        turns: The conversation's turns, in order.
        context_turns: How many turns before the prompt go into `context`.
    """
    pairs: list[TurnPair] = []
    for index, turn in enumerate(turns):
        nxt = turns[index + 1] if index + 1 < len(turns) else None
        if nxt is None and not awaits_response(turn.role):
            continue
        if nxt is not None and not is_pair(turn.role, nxt.role):
            continue
        context = turns[max(0, index - context_turns) : index]
        pairs.append(make_pair(turn, nxt, context=context, pair_index=len(pairs)))
    return pairs
