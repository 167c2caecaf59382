"""Local servers speaking REDCap's, Twilio's, Aliyun's and Tencent's HTTP APIs, for `make run` and the tests.

REDCap cannot be installed here and the SMS providers cannot be reached, so these stand in for them on
127.0.0.1; the real PyCap, `twilio`, Aliyun and Tencent clients talk to them over HTTP.

Each server is `<name>_protocol` (the wire format), `<name>_state` (what it knows, thread-safe), what it
sends to the app (`twilio_callbacks`, `tencent_callbacks`, `aliyun_pushes`) and its Flask app and CLI
(`twilio_api`, `aliyun_sms`, `tencent_sms`, `redcap_api`). What they share: `runner` (serving on loopback,
start-up until SIGTERM), `control` (`/_control`, faults, latency, hang-up, log redaction) and `worker`
(the thread that runs callbacks when they fall due).
"""
