"""Started by Python itself when this folder is on PYTHONPATH (only `make test-timeshift` puts it there)."""

import followup_timeshift

followup_timeshift.start()
