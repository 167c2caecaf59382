"""Tests of app.participants: a participant's course through the study."""
