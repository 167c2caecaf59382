"""The coordinators' console: work list, visits, participants, actions."""

from app.console import (
    conflicts,  # noqa: F401  (attaches its routes to bp)
    reconcile,  # noqa: F401  (attaches its routes to bp)
    routes,  # noqa: F401  (attaches its routes to bp)
    user_routes,  # noqa: F401  (attaches its routes to bp)
)
from app.console.blueprint import bp

__all__ = ["bp"]
