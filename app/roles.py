"""The coordinator roles, highest first: apart from the models so `flask users create --help` can offer
them without loading the database layer (app.models.user re-exports them)."""

ROLES = ("admin", "coordinator", "viewer")
