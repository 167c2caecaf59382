"""Participants' course through the study: their visits, survey links, submissions and lifecycle.

Owns `visits` (scheduling, completing, cancelling and sweeping visits), `links` (the single-use survey
links texted to participants), `submissions` (accepting a questionnaire, red-flag alerts),
`lifecycle` (the one way a participation ends, and opting out of / back into texts, whether a coordinator,
REDCap's roster or an SMS keyword asks), `pending_texts.cancel_pending_texts` (the one rule for which
unsent texts a change withdraws), `entry_codes` (the short codes of SMS_LINK_MODE=entry) and the phone
follow-up: `calls`, `call_list` and `phone_questionnaire`.

May import: `app.models`, `app.extensions`, `app.audit`, `app.schedule`, `app.questionnaire` (red-flag
rules) and the REDCap push queues (`app.redcap.push.visit_statuses`, `app.redcap.push.study_statuses`).
Never the views (`app.console`, `app.webhooks`, `app.patient`), the SMS sender nor the roster sync
(`app.redcap.roster`): they call this package, not the other way round. This file imports nothing, so
importing one module of the package never loads the others.
"""
