"""The append-only audit log of every automated and human action."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text, event
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, Mapper, mapped_column

from app.extensions import Model
from app.models.types import UTCDateTime, utcnow


class AuditEntry(Model):
    """Who did what, when, to which participant or visit, and why. Never holds answers or phone numbers."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(200))  # "system:scheduler", "user:3", "participant", "redcap"
    action: Mapped[str] = mapped_column(String(100), index=True)
    participant_id: Mapped[int | None] = mapped_column(
        ForeignKey("participants.id", ondelete="SET NULL"), index=True
    )
    visit_id: Mapped[int | None] = mapped_column(ForeignKey("visits.id", ondelete="SET NULL"))
    reason: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


@event.listens_for(AuditEntry, "before_update")
def _refuse_update(mapper: Mapper[AuditEntry], connection: Connection, target: AuditEntry) -> None:
    raise PermissionError("the audit log is append-only")


@event.listens_for(AuditEntry, "before_delete")
def _refuse_delete(mapper: Mapper[AuditEntry], connection: Connection, target: AuditEntry) -> None:
    raise PermissionError("the audit log is append-only")
