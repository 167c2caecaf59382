"""Every conversation with REDCap, the study's source of truth.

Owns: `client` (our edges around PyCap: timeouts, the call ceiling, our own exceptions, the blinded
field never requested) and `pycap` (PyCap's Project with those edges, imported only when a client is
built), `exports` (shared export helpers), `roster` + `roster_rows` (the roster sync and parsing one
row), `metadata` (refreshing the stored questionnaire definition), `status` (what REDCap says is done),
`conflicts` (never overwrite staff data), `freshness` (re-read stale facts before a text goes),
`failure_pause`, `rereads` (the Data Entry Trigger queue), `reconcile` (our store vs REDCap),
`enrollment` (ended statuses the console recorded), `state` (named values kept in SystemState) and
`push/` (the durable push queues and the pass).

May import: `app.models`, `app.extensions`, `app.audit`, `app.backoff`, `app.schedule`,
`app.questionnaire` (the stored definition), `app.participants` (the roster ends participations and
schedules visits) and `app.sms.decisions`. Never the views (`app.console`, `app.webhooks`,
`app.patient`, `app.cli`). `import redcap` in these modules is PyCap: imports are absolute.
"""
