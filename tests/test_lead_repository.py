"""The lead repository on a real (migrated) SQLite database."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from bot.db.engine import Database
from bot.db.models import Lead, Outbox, utcnow
from bot.leads.repository import LeadRepository, LeadSubmission
from bot.prospect import ProspectId

ANSWERS = {
    "consent": True,
    "company": "<b>ACME</b> & Co",
    "contact_name": "王经理",
    "phone": "+8613800138000",
    "email": "wang@example.com",
    "city": "北京",
    "headcount": 80,
    "sites": 2,
    "schemes": ["iso20000"],
    "timeline": "3m",
    "note": "年底前",
}


def sub(key: str, user: int = 42, **answers: object) -> LeadSubmission:
    return LeadSubmission(
        kind="lead",
        key=key,
        answers={**ANSWERS, **answers},
        source_flow="iso20000",
        selfcheck={"licence": True, "running_3m": False},
        content_version="abc",
        locale="zh",
        prospect=ProspectId.telegram(user, "wang"),
        transcript=["> 你好", "@iso20000.intro"],
    )


async def rows(db: Database, model: type) -> list:  # type: ignore[type-arg]
    async with db.sessions() as s:
        return list(await s.scalars(select(model)))


async def test_submit_saves_every_field_and_queues_one_alert(db: Database) -> None:
    repo = LeadRepository(db, staff_chat_id=-100)
    saved = await repo.submit(sub("42:17"))
    assert saved.created and saved.reference == "L000001"
    [lead] = await rows(db, Lead)
    assert (lead.company, lead.contact_name, lead.phone, lead.email) == (
        "<b>ACME</b> & Co",
        "王经理",
        "+8613800138000",
        "wang@example.com",
    )
    assert (lead.city, lead.headcount, lead.sites) == ("北京", 80, 2)
    assert (lead.schemes, lead.timeline) == (["iso20000"], "3m")
    assert lead.status == "new" and lead.source_flow == "iso20000" and lead.consent_at is not None
    assert lead.selfcheck == {"licence": True, "running_3m": False}
    assert (
        lead.transcript == ["> 你好", "@iso20000.intro"]
        and lead.handle == "wang"
        and lead.channel == "telegram"
    )
    [alert] = await rows(db, Outbox)
    assert (alert.kind, alert.lead_id, alert.chat_id, alert.sent_at) == ("new_lead", lead.id, -100, None)


async def test_the_same_submission_twice_gives_one_lead(db: Database) -> None:
    repo = LeadRepository(db, staff_chat_id=-100)
    first = await repo.submit(sub("42:17"))
    again = await repo.submit(sub("42:17", note="changed?"))
    assert again.repeated and again.lead_id == first.lead_id
    assert len(await rows(db, Lead)) == 1 and len(await rows(db, Outbox)) == 1
    [lead] = await rows(db, Lead)
    assert lead.note == "年底前"


async def test_a_returning_prospect_updates_the_open_lead(db: Database) -> None:
    repo = LeadRepository(db, staff_chat_id=-100)
    first = await repo.submit(sub("42:17"))
    second = await repo.submit(sub("42:40", schemes=["iso27001"], note="也想做27001", phone="+8613900139000"))
    assert not second.created and second.lead_id == first.lead_id
    [lead] = await rows(db, Lead)
    assert lead.schemes == ["iso20000", "iso27001"] and lead.phone == "+8613900139000"
    assert lead.note == "年底前\n---\n也想做27001"
    assert [o.kind for o in await rows(db, Outbox)] == ["new_lead", "updated_lead"]


async def test_a_closed_or_old_lead_is_not_reopened(db: Database) -> None:
    repo = LeadRepository(db)
    first = await repo.submit(sub("42:1"))
    await repo.set_status(first.lead_id, "won")
    second = await repo.submit(sub("42:2"))
    assert second.created and second.lead_id != first.lead_id
    async with db.write_sessions() as s, s.begin():
        for lead in await s.scalars(select(Lead)):
            lead.created_at -= timedelta(days=31)
        await s.execute(update(Lead).values(status="new"))
    third = await repo.submit(sub("42:3"))
    assert third.created
    other_user = await repo.submit(sub("7:3", user=7))
    assert other_user.created
    assert len(await rows(db, Lead)) == 4


async def test_an_enquiry_is_a_lightweight_lead(db: Database) -> None:
    repo = LeadRepository(db, staff_chat_id=-100)
    enquiry = LeadSubmission(
        kind="enquiry",
        key="9:5",
        answers={"name": "钱先生", "phone": "+8613912345678"},
        source_flow="iso9001",
        prospect=ProspectId.telegram(9),
        question="外资企业可以申请吗？",
    )
    saved = await repo.submit(enquiry)
    assert saved.reference == "Q000001"
    [lead] = await rows(db, Lead)
    assert (lead.kind, lead.contact_name, lead.phone, lead.schemes, lead.question) == (
        "enquiry",
        "钱先生",
        "+8613912345678",
        ["iso9001"],
        "外资企业可以申请吗？",
    )


async def test_forget_clears_every_personal_field(db: Database) -> None:
    repo = LeadRepository(db, staff_chat_id=-100)
    await repo.submit(sub("42:1"))
    await repo.submit(sub("7:1", user=7))
    assert await repo.forget(ProspectId.telegram(42)) == 1
    leads = {lead.id: lead for lead in await rows(db, Lead)}
    gone = leads[1]
    for name in ("company", "contact_name", "phone", "email", "city", "note", "question", "external_id",
                 "handle"):  # fmt: skip
        assert getattr(gone, name) is None, name
    assert gone.transcript == [] and gone.forgotten_at is not None
    assert gone.headcount == 80 and gone.schemes == ["iso20000"]  # no personal data: kept for the figures
    assert leads[2].company == "<b>ACME</b> & Co"
    assert [o.lead_id for o in await rows(db, Outbox)] == [2]  # its unsent alert is gone too


async def test_alerts_are_claimed_once_and_can_be_given_back(db: Database) -> None:
    repo = LeadRepository(db, staff_chat_id=-100)
    await repo.submit(sub("42:1"))
    await repo.submit(sub("7:1", user=7))
    first = await repo.due_alerts()
    assert [o.lead_id for o in first] == [1, 2]
    assert await repo.due_alerts() == []  # another sender (replica) finds them taken
    await repo.alert_sent(first[0].id, 555)
    await repo.release_alerts([o.id for o in first], utcnow())  # the unsent one is given back
    [again] = await repo.due_alerts()
    assert again.id == first[1].id and again.lead_id == 2
