"""Protocol messages the charger sends and the parser for what it receives.

Owns the exact JSON text of `nfc_scan`, `metrics`, `stop`, `emergency` and `status`
(spelled as the seed and docs/protocol-decisions spell them) and `parse()` for inbound
frames. Texts are formatted by hand with fixed decimals so a reading costs one string,
prints the same on the 32-bit ESP32 float and on CPython, and never shows float noise.
Runs under CPython and MicroPython.
"""

import json

STATES = ("idle", "charging", "fault")


def _ts_field(ts):
    # `ts` None or 0 means the clock is not set yet: the field is omitted.
    if ts:
        return ',"ts":%d' % int(ts)
    return ""


def _wh_field(wh):
    if wh is None:
        return ""
    return ',"wh":%d' % int(wh)


def nfc_scan(uid):
    """A card tap: `{"type":"nfc_scan","nfc_uid":"04A1B2C3"}`."""
    return '{"type":"nfc_scan","nfc_uid":%s}' % json.dumps(str(uid))


def metrics(session_id, v, a, w, wh, ts):
    """A meter reading of a session: the seed's fields plus `wh` (meter energy register)."""
    if ts and wh is not None:  # the usual case: one string, no partial ones
        return ('{"type":"metrics","session_id":%d,"v":%.1f,"a":%.3f,"w":%.1f,"wh":%d,'
                '"ts":%d}' % (session_id, v, a, w, wh, ts))
    return '{"type":"metrics","session_id":%d,"v":%.1f,"a":%.3f,"w":%.1f%s%s}' % (
        session_id, v, a, w, _wh_field(wh), _ts_field(ts))


def _session_event(kind, session_id, wh, ts):
    return '{"type":"%s","session_id":%d%s%s}' % (kind, session_id, _wh_field(wh), _ts_field(ts))


def stop(session_id, wh, ts):
    """The charger ended the session (STOP button, offline limit, meter failure)."""
    return _session_event("stop", session_id, wh, ts)


def emergency(session_id, wh, ts):
    """EMERGENCY pressed; `session_id` None (`null`) when no session was running."""
    if session_id is None:
        return '{"type":"emergency","session_id":null%s%s}' % (_wh_field(wh), _ts_field(ts))
    return _session_event("emergency", session_id, wh, ts)


def status(state, session_id, wh):
    """Reconciliation after connect / `sync_request`: the charger's physical truth."""
    if state not in STATES:
        raise ValueError("state must be idle, charging or fault")
    sid = "null" if session_id is None else "%d" % session_id
    wh_text = "null" if wh is None else "%d" % int(wh)
    return '{"type":"status","state":"%s","session_id":%s,"wh":%s}' % (state, sid, wh_text)


def parse(text):
    """Return the frame as a dict, or None unless it is a JSON object with a string `type`."""
    try:
        msg = json.loads(text)
    except (ValueError, TypeError):
        return None
    if not isinstance(msg, dict):
        return None
    if not isinstance(msg.get("type"), str):
        return None
    return msg
