"""`python -m tests.scheduler.shifted_clock SECONDS`: the real scheduler command, its wall clock moved ahead.

Models a scheduler that comes back SECONDS after it went down, without the test waiting that long:
time-machine moves `datetime.now()`/`time.time()` forward (and lets it tick), then the ordinary
`flask --app wsgi scheduler` command runs, with its real signal handling, in this process.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

import time_machine


def main() -> None:
    """Shift the clock, then hand over to Flask's command line."""
    seconds = float(sys.argv[1])
    time_machine.travel(datetime.now(UTC) + timedelta(seconds=seconds), tick=True).start()
    from flask.cli import main as flask_main

    sys.argv = ["flask", "--app", "wsgi", "scheduler"]
    flask_main()


if __name__ == "__main__":
    main()
