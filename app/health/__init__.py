"""Health checks for the hospital's monitoring: no participant data, ever."""

from app.health import routes  # noqa: F401  (attaches its routes to bp)
from app.health.blueprint import bp

__all__ = ["bp"]
