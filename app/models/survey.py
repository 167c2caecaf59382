"""Questionnaire definitions from REDCap, personal links and entry codes, and accepted submissions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import Model
from app.models.push_row import PushRow, SyncStatus
from app.models.types import UTCDateTime, utcnow

SYNC_STATUSES = tuple(status.value for status in SyncStatus)


class InstrumentVersion(Model):
    """One fetched version of a REDCap instrument's metadata; the current one builds the form."""

    __tablename__ = "instrument_versions"
    __table_args__ = (UniqueConstraint("instrument", "version_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    instrument: Mapped[str] = mapped_column(String(100), index=True)
    version_hash: Mapped[str] = mapped_column(String(64))
    fields: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    is_current: Mapped[bool] = mapped_column(default=False)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SurveyLink(Model):
    """A personal questionnaire link. Only the token's SHA-256 is stored; the token lives in the SMS."""

    __tablename__ = "survey_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    visit_id: Mapped[int] = mapped_column(ForeignKey("visits.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime)
    valid_until: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    visit = relationship("Visit")


class EntryCode(Model):
    """A short personal code typed at `/c` (SMS_LINK_MODE=entry), bound to one visit.

    Only a keyed hash of the code is stored (see app.participants.entry_codes); the code lives in the SMS.
    The hash is unique, so no two codes ever issued collide, open visits included.
    """

    __tablename__ = "entry_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    visit_id: Mapped[int] = mapped_column(ForeignKey("visits.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime)
    valid_until: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    visit = relationship("Visit")


class Submission(PushRow, Model):
    """The one accepted questionnaire of a visit, in REDCap's raw codes, and its REDCap sync state."""

    __tablename__ = "submissions"
    __table_args__ = (
        UniqueConstraint("visit_id"),
        CheckConstraint(f"sync_status IN {SYNC_STATUSES!r}", name="sync_status_known"),
        Index("ix_submissions_sync", "sync_status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    visit_id: Mapped[int] = mapped_column(ForeignKey("visits.id", ondelete="CASCADE"))
    instrument_version_id: Mapped[int | None] = mapped_column(ForeignKey("instrument_versions.id"))
    answers: Mapped[dict[str, Any]] = mapped_column(JSON)
    language: Mapped[str] = mapped_column(String(5), default="en")
    source: Mapped[str] = mapped_column(String(20), default="participant")
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    red_flag: Mapped[bool] = mapped_column(default=False)
    red_flag_reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    red_flag_acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    red_flag_acknowledged_by: Mapped[str | None] = mapped_column(String(200))
    red_flag_note: Mapped[str | None] = mapped_column(Text)
    redcap_snapshot: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # REDCap's side of a conflict

    visit = relationship("Visit")
    instrument_version = relationship("InstrumentVersion")
