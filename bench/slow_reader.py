#!/usr/bin/env python3
"""A listener that does not read, in a room of its own, while the smoke run's
other rooms flow (bench/smoke.sh). It opens the room's event stream with a tiny
receive buffer, reads nothing while it sends the room enough commands to fill
every socket buffer on the way, then reads: the stream must go on from its
start to the room's last version, ids rising, with at least one resync
snapshot in between (the room handed the stream back to its task, which fell
a ring behind and was resynced). Exits non-zero otherwise.

    bench/slow_reader.py ADDR COMMANDS
"""
import http.client
import json
import socket
import sys


class Api:
    """One kept-alive HTTP connection for the reader's commands."""

    def __init__(self, addr):
        host, port = addr.rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port), timeout=30)

    def request(self, method, path, body=None):
        self.conn.request(method, path, body=json.dumps(body) if body is not None else None,
                          headers={"Content-Type": "application/json"})
        response = self.conn.getresponse()
        data = response.read()
        if response.status >= 300:
            sys.exit(f"slow reader: {method} {path}: {response.status} {data[:200]!r}")
        return json.loads(data)


def main():
    addr, commands = sys.argv[1], int(sys.argv[2])
    api = Api(addr)
    room = api.request("POST", "/api/rooms",
                   {"control": "open", "video_id": "dQw4w9WgXcQ"})["room_id"]
    host, port = addr.rsplit(":", 1)
    stream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    stream.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    stream.connect((host, int(port)))
    stream.sendall(f"GET /api/rooms/{room}/events HTTP/1.1\r\nHost: {addr}\r\n\r\n".encode())
    last = 0
    # Each `load` is a `state` event of about 2.5 KB (a long media URL, title
    # and artist) while the room itself stays small: a few thousand fill every
    # buffer on the way (a socket's send buffer grows to 4 MiB).
    url = "https://media.example/" + "a" * 2000 + ".mp3"
    for i in range(commands):
        last = api.request("POST", f"/api/rooms/{room}/commands",
                           {"type": "load", "media_url": f"{url}?{i}", "paused": True,
                            "title": f"{i} " + "t" * 190, "artist": "a" * 200})["version"]
    # Now read: everything up to the last version must come.
    stream.settimeout(30)
    buffer = b""
    seen, snapshots, previous = 0, 0, 0
    while previous < last:
        chunk = stream.recv(65536)
        if not chunk:
            sys.exit(f"slow reader: the stream ended at version {previous} of {last}")
        buffer += chunk
        while b"\n\n" in buffer:
            frame, buffer = buffer.split(b"\n\n", 1)
            lines = frame.decode("utf-8", "replace").split("\n")
            ids = [int(line[4:]) for line in lines if line.startswith("id: ")]
            events = [line[7:] for line in lines if line.startswith("event: ")]
            if not ids:
                continue
            if ids[0] <= previous:
                sys.exit(f"slow reader: id {ids[0]} after {previous}")
            if events == ["snapshot"]:
                snapshots += 1
            elif ids[0] != previous + 1:
                sys.exit(f"slow reader: {events} {ids[0]} after {previous}: a gap without a snapshot")
            previous = ids[0]
            seen += 1
    stream.close()
    if snapshots < 2:
        sys.exit(f"slow reader: never resynced ({seen} events read, {snapshots} snapshots)")
    print(f"slow reader: {seen} frames read up to version {last}, "
          f"{snapshots - 1} resync snapshot(s); every command was answered meanwhile")


if __name__ == "__main__":
    main()
