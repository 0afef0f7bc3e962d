"""Schemathesis hooks for scripts/schemathesis (loaded through SCHEMATHESIS_HOOKS).

Every check runs, positive and negative data included. A few rules of the API
are more than a JSON Schema can state; docs/API.md names them (under
`GET /api/openapi.json`). A failure that one of them explains is left out
here, under the same name, and nothing else is: a schema-valid request refused
(`RejectedPositiveData`) or a schema-violating one taken (`AcceptedNegativeData`)
only where the request meets that rule. Generation is left alone, so every
phase (stateful included) is judged the same way.
"""

import json
import os
import re
import time

import requests
import schemathesis
from schemathesis.core.failures import AcceptedNegativeData
from schemathesis.openapi.checks import RejectedPositiveData

# The server under test, and the limits it was started with (scripts/schemathesis).
BASE_URL = os.environ["SYNCROOM_BASE_URL"]
MAX_QUEUE = int(os.environ["SYNCROOM_MAX_QUEUE"])
# Where a `starts_at` is sure to fall in the window around the server's clock
# (this machine's) by the time it arrives, in ms from now: the server takes
# from 1 s before to 60 s after (docs/API.md), less a second either side.
STARTS_AT_WINDOW_MS = (0, 59_000)

# The largest body each route reads, in bytes (docs/API.md, Limits): 16 KiB,
# 64 KiB for a command, and 1 KiB for a sync report.
BODY_LIMITS = {"/api/rooms/{room_id}/sync": 1024, "/api/rooms/{room_id}/commands": 64 * 1024}
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


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _error_code(response):
    try:
        return response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None


def _refused_by_the_body(case, response):
    """The name of the rule between fields or bytes that refused a schema-valid body, if any."""
    # BODY_SIZE: no schema states a body's size in bytes; over the route's
    # limit the answer is 413 however right the fields are. (A negative body
    # over it is refused all the same: scripts/schemathesis counts 413 a refusal.)
    limit = BODY_LIMITS.get(case.operation.path, DEFAULT_BODY_LIMIT)
    if response.status_code == 413 and _body_bytes(case) > limit:
        return "BODY_SIZE"
    if _error_code(response) != "invalid_value":
        return None
    for body in _bodies(case):
        # MEDIA_URL_GRAMMAR: the pattern says only how a media URL starts; the
        # server parses it as a URL (a host, no user name, no dot segment under
        # /media/, at most 2,048 bytes). The plain forms both admit are never
        # excused.
        media_url = body.get("media_url")
        if isinstance(media_url, str) and not PLAIN_MEDIA_URL.fullmatch(media_url):
            return "MEDIA_URL_GRAMMAR"
        # P50_NOT_ABOVE_P95: a sync report's median drift may not exceed its
        # 95th percentile, a rule between two fields.
        p50, p95 = body.get("drift_p50_ms"), body.get("drift_p95_ms")
        if _is_number(p50) and _is_number(p95) and p50 > p95:
            return "P50_NOT_ABOVE_P95"
    return None


def _room(case):
    """The room a request went to, as `GET /api/rooms/{room_id}` answers it (or None)."""
    room_id = (case.path_parameters or {}).get("room_id")
    if not isinstance(room_id, str):
        return None
    response = requests.get(f"{BASE_URL}/api/rooms/{room_id}", timeout=5)
    return response.json() if response.status_code == 200 else None


def _refused_by_the_room(case, response):
    """The name of the room's or the clock's rule a well-formed command broke, if any.

    A refused command changes nothing, so the room asked right after is the
    room that refused it (schemathesis sends one request at a time).
    """
    command = case.body
    if case.operation.path != "/api/rooms/{room_id}/commands" or not isinstance(command, dict):
        return None
    code, kind = _error_code(response), command.get("type")
    # STARTS_AT_WINDOW: from 1 s before to 60 s after the server's clock, and
    # never with `paused: true`.
    starts_at = command.get("starts_at")
    if code == "invalid_value" and _is_number(starts_at):
        ahead = starts_at - time.time() * 1000
        inside = STARTS_AT_WINDOW_MS[0] <= ahead <= STARTS_AT_WINDOW_MS[1]
        if not inside or command.get("paused") is True:
            return "STARTS_AT_WINDOW"
    # PLAYLIST_NEEDS_KEY: `playlist_id` needs the server's YouTube API key
    # (--youtube-api-key), and the server under test has none.
    if code == "invalid_command" and kind == "queue_add" and command.get("playlist_id") is not None:
        return "PLAYLIST_NEEDS_KEY"
    room = _room(case)
    if room is None:
        return None
    queue, state = room.get("queue", []), room.get("state", {})
    # ITEM_IN_QUEUE: `queue_move` and `queue_remove` name an item the queue holds.
    held = {item.get("item_id") for item in queue}
    if code == "invalid_value" and kind in ("queue_move", "queue_remove"):
        if command.get("item_id") not in held:
            return "ITEM_IN_QUEUE"
    # QUEUE_NOT_FULL: `queue_add` to a queue of `--max-queue` items.
    if code == "invalid_value" and kind == "queue_add" and len(queue) >= MAX_QUEUE:
        return "QUEUE_NOT_FULL"
    # SOMETHING_LOADED: `play` needs an item loaded.
    nothing_loaded = state.get("video_id") is None and state.get("media_url") is None
    if code == "invalid_command" and kind == "play" and nothing_loaded:
        return "SOMETHING_LOADED"
    return None


@schemathesis.hook
def filter_failure(context, failure, case, response):
    if isinstance(failure, RejectedPositiveData):
        return (
            _refused_by_the_body(case, response) is None
            and _refused_by_the_room(case, response) is None
        )
    if isinstance(failure, AcceptedNegativeData):
        # TRIMMED_BEFORE_COUNTING: `maxLength` counts the text as sent, the
        # server counts it trimmed, so text too long only by its surrounding
        # white space is text the server rightly takes.
        return not any(
            _too_long_only_untrimmed(field, body.get(field))
            for body in _bodies(case)
            for field in TRIMMED_FIELDS
        )
    return True
