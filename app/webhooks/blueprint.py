"""The `webhooks` blueprint object and its hooks; the route modules attach their views to it."""

from flask import Blueprint

bp = Blueprint("webhooks", __name__)
