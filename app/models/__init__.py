"""The data model. Import models from here; each file holds one area."""

from app.models.audit import AuditEntry
from app.models.calls import CALL_OUTCOMES, CallAttempt
from app.models.messaging import InboundMessage, OutboundMessage, OutboundStatus
from app.models.participant import ENDED_STATUSES, Participant, StudyStatus
from app.models.push_row import SyncStatus
from app.models.redcap_refresh import ConflictDecision, RecordRefresh
from app.models.redcap_sync import PushedVisitStatus, RedcapEnrollmentStatusPush, RedcapStatusPush
from app.models.sms import SmsRateBucket, SmsStatusEvent
from app.models.survey import EntryCode, InstrumentVersion, Submission, SurveyLink
from app.models.system import SchedulerLease, SystemState
from app.models.types import UTCDateTime, utcnow
from app.models.user import ROLES, ROLES_BY_NAME, LoginFailure, User
from app.models.visit import Visit, VisitStatus

__all__ = [
    "CALL_OUTCOMES",
    "ENDED_STATUSES",
    "ROLES",
    "ROLES_BY_NAME",
    "AuditEntry",
    "CallAttempt",
    "ConflictDecision",
    "EntryCode",
    "InboundMessage",
    "InstrumentVersion",
    "LoginFailure",
    "OutboundMessage",
    "OutboundStatus",
    "Participant",
    "PushedVisitStatus",
    "RecordRefresh",
    "RedcapEnrollmentStatusPush",
    "RedcapStatusPush",
    "SchedulerLease",
    "SmsRateBucket",
    "SmsStatusEvent",
    "StudyStatus",
    "Submission",
    "SurveyLink",
    "SyncStatus",
    "SystemState",
    "UTCDateTime",
    "User",
    "Visit",
    "VisitStatus",
    "utcnow",
]
