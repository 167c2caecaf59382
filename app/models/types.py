"""Column types shared by the models."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import DateTime, Enum
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every database.

    SQLite keeps no zone, so values are stored as naive UTC and given back as aware UTC;
    refusing naive input keeps local times from slipping in unnoticed.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; pass an aware datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def status_type(enum: type[StrEnum], length: int = 20) -> Enum:
    """A status column holding a StrEnum: stored as the member's plain value in a VARCHAR(`length`).

    No database enum type and no extra constraint (the models keep their own CHECKs), so the schema and
    the stored strings stay what they were; rows load as members, and bare strings still bind.
    """
    return Enum(
        enum,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda members: [member.value for member in members],
    )


def utcnow() -> datetime:
    """The current instant, aware, in UTC."""
    return datetime.now(UTC)
