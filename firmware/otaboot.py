# otaboot.py: picks the firmware version to run, before the charger package is imported
# (boot.py calls choose() on the board, after the relay is OFF; tools/sim/run_charger.py does
# the same on the unix port). Part of the loader: an update never replaces it.
#
# Versions live on the filesystem beside each other: /charger/ is what `make flash` copied
# (slot "usb", never touched by an update), /ota/a/charger/ and /ota/b/charger/ hold updates.
# /ota/state is one line of six words: slot version tries previous_slot previous_version
# report. tries is "ok" once the version came online (connected and welcomed by the server),
# else how many boots it had without coming online; report is "-", "updated" or
# "rolled_back" (sent to the server once online). A version that boots MAX_TRIES times
# without coming online (it crashes at start, or never reaches the server: charger/ota.py
# resets the board after `ota_confirm_s`) is rolled back: the previous slot runs again. The
# state is written to ota/state.new and renamed over ota/state: a power cut leaves the old
# or the new line, never half of one.
import os
import sys

STATE = "ota/state"
MAX_TRIES = 2


def read():
    """The state's six words, or None (no update ever installed, or an unreadable file)."""
    try:
        with open(STATE) as f:
            words = f.read().split()
    except OSError:
        return None
    return words if len(words) == 6 else None


def write(words):
    with open(STATE + ".new", "w") as f:
        f.write(" ".join(words))
    try:
        os.rename(STATE + ".new", STATE)
    except OSError:  # a filesystem whose rename does not replace
        os.remove(STATE)
        os.rename(STATE + ".new", STATE)


def choose():
    """Count this boot, roll back an update that failed to come online, put the chosen
    version's directory first on sys.path. Never raises: any problem runs /charger/."""
    try:
        words = read()
        if words is None:
            return
        if words[2] != "ok":
            if int(words[2]) >= MAX_TRIES:
                print("[ota] version", words[1], "never came online: back to", words[4])
                words = [words[3], words[4], "ok", words[0], words[1], "rolled_back"]
            else:
                words[2] = str(int(words[2]) + 1)
            write(words)
        if words[0] != "usb":
            sys.path.insert(0, "ota/" + words[0])
    except Exception as e:  # noqa: BLE001 - the board must boot whatever the state says
        print("[ota] state unusable:", repr(e))
