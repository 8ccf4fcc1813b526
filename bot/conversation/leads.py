"""Effects that become leads: the lead form (``LeadSubmitted``) and asking a consultant
(``EnquirySubmitted``); and ``ForgetRequested``, which erases the prospect's personal data.
The same for every channel."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from bot.content import Content
from bot.conversation.core import EffectHandler
from bot.conversation.turn import Turn
from bot.db.models import Outbox
from bot.engine.events import SUBMISSIONS, Effect, ForgetRequested
from bot.leads.repository import LeadRepository, LeadSubmission, Saved
from bot.storage import ConversationStore, Record, commit_with

log = logging.getLogger(__name__)

AlertEraser = Callable[[Sequence[Outbox]], Awaitable[int]]
"""Takes an erased prospect's details out of the alerts already posted to staff."""


def submission_key(turn: Turn) -> str:
    """The event that submitted identifies the submission: a redelivered update, or one replayed
    after a crash, has the same id; ids never repeat in a conversation, even after /forget or a
    purge (a double tap is a stale button and submits nothing)."""
    return f"{turn.key}:{turn.update_id}"


def lead_effects(
    repo: LeadRepository,
    content: Callable[[], Content],
    store: ConversationStore,
    *,
    wake_alerts: Callable[[], None] | None = None,
    erase_alerts: AlertEraser | None = None,
) -> EffectHandler:
    async def forget(turn: Turn) -> None:
        """Erase the prospect's data, then take it out of the alerts already posted (best
        effort: a message may have been deleted there)."""
        if turn.prospect is None:
            return
        ids = await repo.lead_ids_of(turn.prospect)
        await repo.forget(turn.prospect)
        posted = await repo.sent_alerts(ids)  # after: one sent meanwhile is listed too
        edited = await erase_alerts(posted) if erase_alerts is not None else 0
        log.info("a prospect's personal data was erased (%d alerts edited)", edited)

    async def handle(effect: Effect, turn: Turn) -> list[str]:
        if isinstance(effect, ForgetRequested):
            await forget(turn)
            return []
        if not isinstance(effect, SUBMISSIONS):
            return []
        submission = LeadSubmission.from_effect(
            effect, key=submission_key(turn), prospect=turn.prospect, transcript=turn.transcript
        )
        texts = content()
        locale = effect.locale or texts.default_locale

        def notice(saved: Saved) -> str:
            return texts.t("lead_saved", locale, reference=saved.reference)

        def record(saved: Saved) -> Record:
            # The step after the submission and the reference owed to the prospect, in the lead's
            # transaction: killed right after, the prospect is not shown the old summary (whose
            # button would submit again) and still gets the reference with their next update.
            return turn.snapshot(turn.next_state, (*turn.pending, notice(saved)))

        saved = await commit_with(store, repo.db, turn.key, repo.submit_work(submission), record)
        if wake_alerts is not None:
            wake_alerts()
        return [notice(saved)]

    return handle
