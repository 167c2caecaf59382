"""Twilio's webhooks: delivery status callbacks and incoming texts, both signed with X-Twilio-Signature.

The signature is checked against the public URL (PUBLIC_BASE_URL + path + query), because
behind the hospital's proxy the URL Flask sees is not the one Twilio signed. Anything unsigned
or forged gets 403 before the database is touched. Twilio cannot send a CSRF token, so these
two views are exempt; the signature is their authentication.
"""

from __future__ import annotations

from flask import Response, abort, current_app, request
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from app.extensions import csrf
from app.models import utcnow
from app.sms.delivery import record_callback
from app.sms.inbound import handle_inbound
from app.webhooks.blueprint import bp


def signature_valid() -> bool:
    """Whether this request carries Twilio's valid signature for our public URL."""
    token = current_app.config.get("TWILIO_AUTH_TOKEN")
    signature = request.headers.get("X-Twilio-Signature", "")
    if not token or not signature:
        return False
    url = current_app.config["PUBLIC_BASE_URL"] + request.path
    if request.query_string:
        url += "?" + request.query_string.decode("latin-1")
    account = current_app.config.get("TWILIO_ACCOUNT_SID")
    if account and request.form.get("AccountSid") not in (None, account):
        return False
    valid: bool = RequestValidator(token).validate(url, request.form.to_dict(), signature)
    return valid


@bp.post("/sms/twilio/status")
@csrf.exempt
def twilio_status() -> Response:
    """A delivery status for one of our texts."""
    if not signature_valid():
        abort(403)
    sid, status = request.form.get("MessageSid", ""), request.form.get("MessageStatus", "")
    if not sid or not status or len(sid) > 64:
        return Response("MessageSid and MessageStatus are required", status=400, mimetype="text/plain")
    record_callback(sid, status, request.form.get("ErrorCode"), utcnow())
    return Response(status=204)


@bp.post("/sms/twilio/inbound")
@csrf.exempt
def twilio_inbound() -> Response:
    """A text sent to the study number; the answer is TwiML."""
    if not signature_valid():
        abort(403)
    sid, sender = request.form.get("MessageSid", ""), request.form.get("From", "")
    if not sid or not sender or len(sid) > 64:
        return Response("MessageSid and From are required", status=400, mimetype="text/plain")
    result = handle_inbound(sid, sender, request.form.get("To", ""), request.form.get("Body", ""), utcnow())
    twiml = MessagingResponse()
    if result.reply:
        twiml.message(result.reply)
    return Response(str(twiml), mimetype="text/xml", content_type="text/xml; charset=utf-8")
