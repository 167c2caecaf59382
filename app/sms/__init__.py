"""The SMS engine: a durable outbox planned per visit and slot, sent through a provider, tracked to delivery.

Modules: planner (plan pass, manual reminders), sender (claims and sends), reconcile
(rows a crash left in `sending`), checks (send-time facts), ratelimit (one rate for all processes),
delivery (status callbacks and error codes), inbound (STOP/START/HELP and other texts), texts
(catalogue texts and segment counts), providers (console and Twilio backends), steps (tick steps).
Withdrawing unsent texts is `app.participants.pending_texts.cancel_pending_texts`, one rule for all callers.
"""
