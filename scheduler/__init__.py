"""The scheduler process: `flask --app wsgi scheduler` runs the periodic work, one active copy at a time.

It is deliberately separate from the web app (which never starts a scheduler): a leader lease in the
database lets a second copy wait as a standby, and the outbox claims keep sends unique even if two
copies ever overlap.
"""
