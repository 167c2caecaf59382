"""The visit-schedule engine: pure functions from an anchor date and a plan to windows and reminder times."""

from app.schedule.engine import ReminderTime, VisitSchedule, compute_schedule, compute_visit, next_send_moment
from app.schedule.plan import PlanError, ReminderRule, SendWindow, VisitPlan, VisitSpec, parse_visit_plan

__all__ = [
    "PlanError",
    "ReminderRule",
    "ReminderTime",
    "SendWindow",
    "VisitPlan",
    "VisitSchedule",
    "VisitSpec",
    "compute_schedule",
    "compute_visit",
    "next_send_moment",
    "parse_visit_plan",
]
