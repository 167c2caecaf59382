"""Local servers that speak REDCap's and Twilio's HTTP APIs, for `make run` and the tests.

REDCap cannot be installed here and Twilio cannot be reached, so these stand in for
them on 127.0.0.1; the real PyCap and `twilio` clients talk to them over HTTP.
"""
