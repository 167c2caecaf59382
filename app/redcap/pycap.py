"""PyCap's Project with our edges: every HTTP call passes the client's guard, rate ceiling and error mapping.

Kept apart from app.redcap.client because PyCap imports requests (about 0.2 s): the client module is
imported by views and commands at start-up, this one only when a client is built. It knows nothing of
the client's module; the client hands itself in and supplies the exceptions through its hooks.
"""

from __future__ import annotations

import threading
from typing import Any

import redcap
import requests


class GuardedProject(redcap.Project):
    """A redcap.Project whose _call_api is wrapped by the owning RedcapClient's hooks."""

    def __init__(self, client: Any, url: str, token: str, timeout: float) -> None:
        self._client = client
        self._status = threading.local()
        super().__init__(url, token, timeout=timeout, hooks={"response": self._remember_status})

    def _remember_status(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._status.code = response.status_code

    def _call_api(self, payload: dict[str, Any], return_type: Any, file: Any = None) -> Any:
        self._client._guard_payload(payload)
        self._client._before_call()
        self._status.code = None
        try:
            result = super()._call_api(payload, return_type, file)
        except requests.exceptions.JSONDecodeError:
            raise self._client._unusable_answer(self._status.code) from None
        except requests.exceptions.Timeout:
            raise self._client._unavailable(
                f"REDCap did not answer within {self._client.timeout:g} s (REDCAP_TIMEOUT)"
            ) from None
        except requests.exceptions.ConnectionError:
            raise self._client._unavailable(f"cannot connect to REDCap at {self._client.url}") from None
        except redcap.RedcapError as exc:  # PyCap's name for requests.RequestException
            raise self._client._error_answer(exc, self._status.code) from None
        status = self._status.code
        if status is not None and status >= 500:
            raise self._client._unavailable(f"REDCap answered HTTP {status}")
        return result
