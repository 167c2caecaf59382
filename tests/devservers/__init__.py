"""Tests for the local stand-ins for REDCap and Twilio."""
