"""The local Aliyun server's gateway: which AccessKey calls, is the request signed, fresh and not replayed."""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Callable, Mapping
from datetime import datetime

from devservers.aliyun_protocol import (
    API_VERSION,
    SIGNATURE_SKEW,
    AliyunError,
    acs3_signature,
    acs3_string_to_sign,
    parse_authorization,
    rpc_signature,
    rpc_string_to_sign,
    utcnow,
)

ACTIONS = ("SendSms", "QuerySendDetails")


class Gateway:
    """Verifies signature v3 (ACS3-HMAC-SHA256 header) and the old v1 (HMAC-SHA1 query) with the secrets."""

    def __init__(self, access_keys: dict[str, str], wall_clock: Callable[[], datetime] = utcnow) -> None:
        self.access_keys = access_keys  # shared with the state: keys added there count here
        self.wall_clock = wall_clock  # the SDK signs with the real UTC time, not the state's test clock
        self.mismatches = 0
        self._lock = threading.Lock()
        self._nonces: dict[str, datetime] = {}

    def verify(
        self,
        method: str,
        path: str,
        args: Mapping[str, str],
        form: Mapping[str, str],
        headers: Mapping[str, str],
        body: bytes,
    ) -> tuple[str, str]:
        """Check the request's signature (v3 header or v1 query); return (AccessKeyId, Action)."""
        headers = {k.lower(): v for k, v in headers.items()}
        if "authorization" in headers:
            key_id, action, version, stamp, nonce = self._verify_v3(method, path, args, headers, body)
        elif "Signature" in args or "Signature" in form:
            key_id, action, version, stamp, nonce = self._verify_v1(method, {**form, **args})
        else:
            raise AliyunError("MissingAccessKeyId")
        self._check_freshness(key_id, stamp, nonce)
        if version != API_VERSION:
            raise AliyunError("InvalidVersion")
        if action not in ACTIONS:
            raise AliyunError("InvalidAction.NotFound")
        return key_id, action

    def _secret(self, key_id: str) -> str:
        secret = self.access_keys.get(key_id)
        if secret is None:
            raise AliyunError("InvalidAccessKeyId.NotFound")
        return secret

    def _verify_v3(self, method, path, args, headers, body) -> tuple[str, str, str, str, str]:
        _, key_id, signed, signature = parse_authorization(headers["authorization"])
        secret = self._secret(key_id)
        required = {
            "host",
            "x-acs-action",
            "x-acs-version",
            "x-acs-date",
            "x-acs-signature-nonce",
            "x-acs-content-sha256",
        }
        unsigned = (required | {h for h in headers if h.startswith("x-acs-")}) - set(signed)
        if unsigned or any(h not in headers for h in required):
            raise AliyunError(
                "IncompleteSignature", detail=f"Unsigned or missing headers: {sorted(unsigned)}."
            )
        if not hmac.compare_digest(headers["x-acs-content-sha256"], hashlib.sha256(body).hexdigest()):
            raise AliyunError("IncompleteSignature", detail="x-acs-content-sha256 does not match the body.")
        sts = acs3_string_to_sign(method, path, args, headers, signed, headers["x-acs-content-sha256"])
        if not hmac.compare_digest(acs3_signature(secret, sts), signature):
            self.mismatches += 1
            raise AliyunError("SignatureDoesNotMatch", sts=sts.replace("\n", " "))
        return (
            key_id,
            headers["x-acs-action"],
            headers["x-acs-version"],
            headers["x-acs-date"],
            headers["x-acs-signature-nonce"],
        )

    def _verify_v1(self, method: str, params: Mapping[str, str]) -> tuple[str, str, str, str, str]:
        key_id = params.get("AccessKeyId")
        if not key_id:
            raise AliyunError("MissingAccessKeyId")
        secret = self._secret(key_id)
        if params.get("SignatureMethod") != "HMAC-SHA1" or params.get("SignatureVersion") != "1.0":
            raise AliyunError(
                "IncompleteSignature", detail="SignatureMethod HMAC-SHA1, SignatureVersion 1.0."
            )
        sts = rpc_string_to_sign(method, {k: v for k, v in params.items() if k != "Signature"})
        if not hmac.compare_digest(rpc_signature(secret, sts), params["Signature"]):
            self.mismatches += 1
            raise AliyunError("SignatureDoesNotMatch.V1", sts=sts)
        return (
            key_id,
            params.get("Action", ""),
            params.get("Version", ""),
            params.get("Timestamp", ""),
            params.get("SignatureNonce", ""),
        )

    def _check_freshness(self, key_id: str, stamp: str, nonce: str) -> None:
        now = self.wall_clock()
        try:
            signed_at = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S%z")
        except ValueError:
            raise AliyunError("InvalidTimeStamp.Expired") from None
        if abs(now - signed_at) > SIGNATURE_SKEW:
            raise AliyunError("InvalidTimeStamp.Expired")
        if not nonce:
            raise AliyunError("MissingParameter", detail="SignatureNonce")
        with self._lock:
            self._nonces = {k: t for k, t in self._nonces.items() if now - t <= SIGNATURE_SKEW}
            if f"{key_id}:{nonce}" in self._nonces:
                raise AliyunError("SignatureNonceUsed")
            self._nonces[f"{key_id}:{nonce}"] = now
