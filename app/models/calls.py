"""Phone calls coordinators make to participants: one row per attempt, with its outcome."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import Model
from app.models.types import UTCDateTime, utcnow

# reached_done: the questionnaire was taken on the call; callback: reached, call again at `callback_at`;
# refused: no questionnaire this visit; stop_texts: asked for no more texts; withdrew: left the study.
CALL_OUTCOMES = (
    "reached_done",
    "callback",
    "no_answer",
    "busy",
    "wrong_number",
    "refused",
    "stop_texts",
    "withdrew",
)


class CallAttempt(Model):
    """One call about one visit: who called, when, how it went, and a free-text note (no answers)."""

    __tablename__ = "call_attempts"
    __table_args__ = (
        CheckConstraint(f"outcome IN {CALL_OUTCOMES!r}", name="outcome_known"),
        # Two coordinators saving at once both count the same attempts: the second insert fails here.
        UniqueConstraint("visit_id", "attempt_no"),
        Index("ix_call_attempts_visit_at", "visit_id", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    visit_id: Mapped[int] = mapped_column(ForeignKey("visits.id", ondelete="CASCADE"))
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id", ondelete="CASCADE"), index=True)
    attempt_no: Mapped[int] = mapped_column()
    actor: Mapped[str] = mapped_column(String(200))  # "user:3"
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    outcome: Mapped[str] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(Text)
    callback_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    visit = relationship("Visit")

    def __repr__(self) -> str:
        return f"<CallAttempt visit={self.visit_id} #{self.attempt_no} {self.outcome}>"
