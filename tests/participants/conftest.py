"""The local REDCap server fixtures, shared with tests/redcap (the roster path of the lifecycle test)."""

from tests.redcap.conftest import redcap_env_factory, redcap_server  # noqa: F401
