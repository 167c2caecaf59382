"""Webhook routes (built out by the SMS and REDCap work)."""
