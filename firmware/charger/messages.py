"""Protocol messages the charger sends and the parser for what it receives.

Owns the exact JSON text of `nfc_scan`, `metrics`, `stop`, `emergency` and `status`
(spelled as the seed and docs/protocol.md spell them) and `parse()` for inbound
frames. Texts are formatted by hand with fixed decimals so a reading costs one string,
prints the same on the 32-bit ESP32 float and on CPython, and never shows float noise.
`wh` None is left out of `metrics`/`stop`/`emergency`; `ts` 0 or None (clock not set yet)
is left out everywhere; a `stop` carries `reason` only when a fault ended the session. Few
functions on purpose (docs/architecture.md, "Firmware memory rules").
Runs under CPython and MicroPython.
"""

import json

FW = None  # the firmware version running: the charger sets it ("usb" unless an update runs)


def nfc_scan(uid):
    """A card tap: `{"type":"nfc_scan","nfc_uid":"04A1B2C3"}` (the reader's hex text: no
    character needs a JSON escape)."""
    return '{"type":"nfc_scan","nfc_uid":"%s"}' % uid


def metrics(session_id, v, a, w, wh, ts):
    """A meter reading of a session: the seed's fields plus `wh` (meter energy register)."""
    if ts and wh is not None:  # the usual case: one string, no partial ones
        return '{"type":"metrics","session_id":%d,"v":%.1f,"a":%.3f,"w":%.1f,"wh":%d,"ts":%d}' % (
            session_id,
            v,
            a,
            w,
            wh,
            ts,
        )
    return stop(
        session_id,
        wh,
        ts,
        'metrics","session_id":%d,"v":%.1f,"a":%.3f,"w":%.1f' % (session_id, v, a, w),
    )


def stop(session_id, wh, ts, head=None, reason=None):
    """The charger ended the session: the STOP button (no `reason`: the seed's message), or
    by itself for a fault, `reason` "meter_failure" or "offline_limit". `head` (for
    `emergency` and `metrics`) replaces the type and session fields."""
    if head is None:
        head = 'stop","session_id":%d' % session_id
    return '{"type":"%s%s%s%s}' % (
        head,
        ',"reason":"%s"' % reason if reason else "",
        "" if wh is None else ',"wh":%d' % wh,
        ',"ts":%d' % ts if ts else "",
    )


def emergency(session_id, wh, ts):
    """EMERGENCY pressed; `session_id` None (`null`) when no session was running."""
    return stop(
        session_id,
        wh,
        ts,
        'emergency","session_id":%s' % ("null" if session_id is None else "%d" % session_id),
    )


def status(state, session_id, wh, version=None):
    """Reconciliation after connect / `sync_request`: the charger's physical truth, with
    `fw`, the firmware version running (the charger's FW unless `version` is given), when set."""
    fw = version or FW
    if state not in ("idle", "charging", "fault"):
        raise ValueError(state)
    return '{"type":"status","state":"%s","session_id":%s,"wh":%s%s}' % (
        state,
        "null" if session_id is None else "%d" % session_id,
        "null" if wh is None else "%d" % wh,
        ',"fw":"%s"' % fw if fw else "",
    )


def parse(text):
    """Return the frame as a dict, or None unless it is a JSON object with a string `type`."""
    try:
        msg = json.loads(text)
    except (ValueError, TypeError):
        return None
    if isinstance(msg, dict) and isinstance(msg.get("type"), str):
        return msg
    return None
