"""Participants' course through the study: ending a participation and withdrawing their unsent texts.

Owns `lifecycle.end_participation` (the one way a participation ends, whether a coordinator records it in
the console or REDCap's roster says so) and `pending_texts.cancel_pending_texts` (the one rule for which
unsent texts a change withdraws).

May import: `app.models`, `app.extensions`, `app.audit`, `app.visits`, `app.links`, `app.roster_rows`
(the ended statuses), `app.sms.checks` (which kinds of text go to a participant) and the REDCap push
queues (`app.redcap_push`, `app.redcap_enrollment`). Never the views (`app.console`, `app.webhooks`,
`app.patient`) nor the roster sync (`app.roster`): they call this package, not the other way round.
This file imports nothing, so importing one module of the package never loads the others.
"""
