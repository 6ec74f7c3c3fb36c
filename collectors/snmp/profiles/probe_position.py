"""Where a rack probe sits, from the name the site gave it on its PDU or sensor hub.

PDU MIBs carry no position for their external probes: APC's rPDU2 sensor and Raritan's external
sensor only have a name ("A01 rear", "Rack 12 exhaust", "cold aisle top"), which is how sites tell
the front probe from the rear one. A name with a word of the rear (hot-aisle) side makes an
``outlet`` probe; a name with a word of the front side, or no such word at all, keeps the
profile's default (``inlet``: ASHRAE's limits are for the air a rack takes in, so an unnamed
probe is read as the one that matters).
"""

from __future__ import annotations

import re

# Words (whole, case-insensitive) that put a probe at the rack's rear: the air it exhausts.
OUTLET_WORDS = ("outlet", "rear", "exhaust", "back", "hot", "hot-aisle", "return", "discharge")
# Words that put it at the front: the air it takes in. Checked first: "front (not rear)" is read
# as front, and "inlet temperature" never becomes an outlet because of another word.
INLET_WORDS = ("inlet", "front", "intake", "cold", "cold-aisle", "supply", "suction")

_WORD = re.compile(r"[a-z]+(?:-[a-z]+)?")


def probe_position(name: object, default: str = "inlet") -> str:
    """"inlet" or "outlet" for a probe called *name* (any SNMP value; bytes are decoded), else
    *default* when the name says neither."""
    if isinstance(name, bytes):
        name = name.decode("utf-8", "replace")
    words = set(_WORD.findall(str(name).lower().replace("_", " ")))
    if words & set(INLET_WORDS):
        return "inlet"
    if words & set(OUTLET_WORDS):
        return "outlet"
    return default
