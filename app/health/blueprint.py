"""The `health` blueprint object and its hooks; the route modules attach their views to it."""

from flask import Blueprint

bp = Blueprint("health", __name__)
