"""Schemathesis hooks for scripts/schemathesis (loaded through SCHEMATHESIS_HOOKS).

Every check runs, positive and negative data included. A few rules of the API
are more than a JSON Schema can state; docs/API.md names them (under
`GET /api/openapi.json`). For each, the generated case that would meet it is
left out here, under the same name, and nothing else is: each filter says
which rule, and which mode of data (positive or negative) it touches.
"""

import json
import os
import re
import time

import requests
import schemathesis

# The server under test, and the limits it was started with (scripts/schemathesis).
BASE_URL = os.environ["SYNCROOM_BASE_URL"]
MAX_QUEUE = int(os.environ["SYNCROOM_MAX_QUEUE"])
# Where a `starts_at` is sure to fall in the window around the server's clock
# (this machine's) by the time it arrives, in ms from now: the server takes
# from 1 s before to 60 s after (docs/API.md), less a second either side.
STARTS_AT_WINDOW_MS = (0, 59_000)

# The largest body each route reads, in bytes (docs/API.md, Limits): 16 KiB,
# and 1 KiB for a sync report.
BODY_LIMITS = {"/api/rooms/{room_id}/sync": 1024}
DEFAULT_BODY_LIMIT = 16 * 1024

# Text fields the server trims of surrounding white space before it counts
# their characters: room names, chat names and messages, queue titles, the
# name in a sync report.
TRIMMED_FIELDS = ("title", "name", "text")

# What Rust's `str::trim` strips: the Unicode White_Space property.
WHITE_SPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)

# A media URL of a plain form that the pattern and the server's URL grammar
# both admit: an http(s) URL with a plain host name, or a /media/ path of plain
# segments, all ASCII.
PLAIN_MEDIA_URL = re.compile(
    r"(https?://[a-z0-9]+(\.[a-z0-9]+)*(:[0-9]{1,4})?(/[A-Za-z0-9_-]+(\.[A-Za-z0-9]+)?)*"
    r"|/media/[A-Za-z0-9_-]+(\.[A-Za-z0-9]+)?(/[A-Za-z0-9_-]+(\.[A-Za-z0-9]+)?)*)"
)


def _bodies(case):
    """The body's object, and each object in an `items` list it carries."""
    body = case.body
    if not isinstance(body, dict):
        return []
    objects = [body]
    items = body.get("items")
    if isinstance(items, list):
        objects.extend(item for item in items if isinstance(item, dict))
    return objects


def _mode(case):
    meta = case.meta
    return None if meta is None else meta.generation.mode


def _max_lengths(schema, found):
    """Every `maxLength` the description gives a trimmed field, by field name."""
    if isinstance(schema, dict):
        for name, field in (schema.get("properties") or {}).items():
            if name in TRIMMED_FIELDS and isinstance(field, dict) and "maxLength" in field:
                found.setdefault(name, set()).add(field["maxLength"])
        for value in schema.values():
            _max_lengths(value, found)
    elif isinstance(schema, list):
        for value in schema:
            _max_lengths(value, found)
    return found


MAX_LENGTHS = _max_lengths(requests.get(f"{BASE_URL}/api/openapi.json", timeout=10).json(), {})


def _too_long_only_untrimmed(name, value):
    """Whether `value` is longer than a `maxLength` of field `name` only until trimmed."""
    if not isinstance(value, str):
        return False
    trimmed = len(value.strip(WHITE_SPACE))
    return any(trimmed <= limit < len(value) for limit in MAX_LENGTHS.get(name, ()))


def _body_bytes(case):
    """The body's size as sent at its largest (JSON with every non-ASCII character escaped)."""
    try:
        return len(json.dumps(case.body).encode())
    except (TypeError, ValueError):
        return 0


@schemathesis.hook
def filter_case(context, case):
    mode = _mode(case)
    # BODY_SIZE: no schema states a body's size in bytes. A positive case over
    # the route's limit is `413 payload_too_large` however right its fields
    # are; a negative one over it is refused all the same (413 counts as a
    # refusal in scripts/schemathesis).
    limit = BODY_LIMITS.get(case.operation.path, DEFAULT_BODY_LIMIT)
    if mode is not None and mode.is_positive and _body_bytes(case) > limit:
        return False
    for body in _bodies(case):
        # TRIMMED_BEFORE_COUNTING: `maxLength` counts the text as sent, the
        # server counts it trimmed, so a negative case that is too long only
        # by its surrounding white space is one the server rightly takes.
        if mode is not None and mode.is_negative and any(
            _too_long_only_untrimmed(field, body.get(field)) for field in TRIMMED_FIELDS
        ):
            return False
        # MEDIA_URL_GRAMMAR: the pattern says only how a media URL starts; the
        # server parses it as a URL (a host, no user name, no dot segment under
        # /media/, at most 2,048 bytes). Positive cases keep the plain forms
        # both admit; negative ones (not even the start) stay.
        media_url = body.get("media_url")
        if (
            mode is not None
            and mode.is_positive
            and isinstance(media_url, str)
            and not PLAIN_MEDIA_URL.fullmatch(media_url)
        ):
            return False
        # P50_NOT_ABOVE_P95: a sync report's median drift may not exceed its
        # 95th percentile, a rule between two fields.
        p50, p95 = body.get("drift_p50_ms"), body.get("drift_p95_ms")
        if (
            mode is not None
            and mode.is_positive
            and isinstance(p50, (int, float))
            and isinstance(p95, (int, float))
            and not isinstance(p50, bool)
            and not isinstance(p95, bool)
            and p50 > p95
        ):
            return False
    return True


def _room(case):
    """The room a command goes to, as `GET /api/rooms/{room_id}` answers it (or None)."""
    room_id = (case.path_parameters or {}).get("room_id")
    if not isinstance(room_id, str):
        return None
    response = requests.get(f"{BASE_URL}/api/rooms/{room_id}", timeout=5)
    return response.json() if response.status_code == 200 else None


def _refused_by_the_room(command, room):
    """The name of the room's rule a well-formed command breaks, if any."""
    kind = command.get("type")
    if kind in ("queue_move", "queue_remove"):
        held = {item.get("item_id") for item in room.get("queue", [])}
        if command.get("item_id") not in held:
            return "ITEM_IN_QUEUE"
    if kind == "play":
        state = room.get("state", {})
        if state.get("video_id") is None and state.get("media_url") is None:
            return "SOMETHING_LOADED"
    if kind == "queue_add" and len(room.get("queue", [])) >= MAX_QUEUE:
        return "QUEUE_NOT_FULL"
    starts_at = command.get("starts_at")
    if starts_at is not None:
        ahead = starts_at - time.time() * 1000
        if not STARTS_AT_WINDOW_MS[0] <= ahead <= STARTS_AT_WINDOW_MS[1]:
            return "STARTS_AT_WINDOW"
        if command.get("paused") is True:
            return "STARTS_AT_WINDOW"
    return None


@schemathesis.hook("filter_case").apply_to(path="/api/rooms/{room_id}/commands", method="POST")
def filter_commands_the_room_refuses(context, case):
    # Rules of the room and the clock, not of the body: a positive command that
    # the room it goes to must refuse as it stands (an item it does not hold,
    # `play` with nothing loaded, a full queue, a `starts_at` outside the
    # window around now or with `paused: true`) is left out. The room is asked
    # just before; schemathesis sends one request at a time.
    mode = _mode(case)
    if mode is None or not mode.is_positive or not isinstance(case.body, dict):
        return True
    room = _room(case)
    return room is None or _refused_by_the_room(case.body, room) is None
