"""The push to REDCap: durable queues of submissions, visit statuses and study statuses, and the pass.

Owns: `queue` (the shared base: a row to push, a pass's context and report, the queue class),
`submissions`, `visit_statuses` and `study_statuses` (one queue each, with how a row is queued or
re-queued), and `run` (one push pass over all three, with the conflict check called before import).
May import: `app.models`, `app.extensions`, `app.audit`, `app.questionnaire` and the other `app.redcap`
modules except `roster`. This file imports nothing.
"""
