#!/usr/bin/env python3
"""What a long queue costs, on the wire and in memory, against a real syncroom.

1. Wire: a room with a 500-item queue (200-character titles) and LISTENERS
   listening; one `queue_add` of one item. Every listener's stream is read
   from its snapshot on: the bytes each one receives for that command (its
   `queue` frame, and anything else the room sent meanwhile) are counted.
2. Memory: a second room with a full queue of such items sees MOVES
   `queue_move`s. The server's `syncroom_history_bytes` gauge (what rooms keep
   for resume) and its resident memory are read before and after.

Byte counts do not depend on the machine's speed: they are the figures. The
RSS delta is the allocator's view and moves by a few hundred KiB run to run.

    bench/queue_cost.py [--listeners 1000] [--moves 1100] [--rooms 1]

Starts the release build of this checkout (SYNCROOM_BIN overrides) on a free
port with the per-address limits raised (every listener comes from here).
"""
import argparse
import asyncio
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TITLE = "t" * 190


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Api:
    def __init__(self, port):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def call(self, method, path, body=None):
        self.conn.request(method, path, body=json.dumps(body) if body is not None else None,
                          headers={"Content-Type": "application/json"})
        response = self.conn.getresponse()
        data = response.read()
        if response.status >= 300:
            sys.exit(f"queue_cost: {method} {path}: {response.status} {data[:300]!r}")
        return json.loads(data) if data.startswith(b"{") else data.decode()

    def command(self, room, body):
        return self.call("POST", f"/api/rooms/{room}/commands", body)

    def full_room(self, items):
        room = self.call("POST", "/api/rooms", {"control": "open"})["room_id"]
        for start in range(0, items, 100):
            batch = [{"video_id": "dQw4w9WgXcQ", "title": f"{start + j:04} {TITLE}"}
                     for j in range(min(100, items - start))]
            self.command(room, {"type": "queue_add", "items": batch})
        return room

    def gauge(self, name):
        text = self.call("GET", "/metrics")
        match = re.search(rf"^{name} (\S+)$", text, re.M)
        return float(match.group(1)) if match else None


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def listen(port, room, ready, until_version, counts):
    """One listener: reads to its snapshot, says so, then counts the bytes
    that arrive until the frame of `until_version()` has ended."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET /api/rooms/{room}/events HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    buffer = b""
    while b"event: snapshot" not in buffer or not buffer.endswith(b"\n\n"):
        chunk = await reader.read(1 << 20)
        if not chunk:
            raise RuntimeError("stream ended before its snapshot")
        buffer += chunk
    ready.release()
    received, frames = 0, b""
    while True:
        chunk = await reader.read(65536)
        if not chunk:
            raise RuntimeError("stream ended")
        received += len(chunk)
        frames += chunk
        target = until_version()
        if target is not None and f"id: {target}\n".encode() in frames and frames.endswith(b"\n\n"):
            queue_frame = next(f for f in frames.split(b"\n\n") if f"id: {target}\n".encode() in f)
            counts.append((received, len(queue_frame) + 2))
            writer.close()
            return


async def wire(port, api, listeners):
    room = api.full_room(500)
    ready = asyncio.Semaphore(0)
    target = [None]
    counts = []
    tasks = []
    for i in range(listeners):
        tasks.append(asyncio.create_task(listen(port, room, ready, lambda: target[0], counts)))
        if i % 100 == 99:
            await asyncio.sleep(0.05)
    for _ in range(listeners):
        await asyncio.wait_for(ready.acquire(), 60)
    answer = await asyncio.to_thread(api.command, room, {
        "type": "queue_add", "video_id": "dQw4w9WgXcQ", "title": f"new {TITLE}", "name": "Ann"})
    target[0] = answer["version"]
    await asyncio.wait_for(asyncio.gather(*tasks), 120)
    total = sorted(received for received, _ in counts)
    frame = sorted(size for _, size in counts)
    return {
        "listeners": len(counts),
        "queue_items": 500,
        "queue_frame_bytes": frame[-1],
        "received_bytes_per_listener": {"min": total[0], "median": total[len(total) // 2],
                                        "max": total[-1]},
    }


def memory(api, pid, moves, rooms):
    before_rss = rss_kib(pid)
    before_history = api.gauge("syncroom_history_bytes")
    room_bytes = 0
    for _ in range(rooms):
        room = api.full_room(500)
        queue = api.call("GET", f"/api/rooms/{room}")["queue"]
        ids = [item["item_id"] for item in queue]
        for i in range(moves):
            api.command(room, {"type": "queue_move", "item_id": ids[(i * 37) % len(ids)],
                               "index": (i * 11) % len(ids)})
        room_bytes += len(json.dumps(api.call("GET", f"/api/rooms/{room}")))
    time.sleep(0.5)
    history = api.gauge("syncroom_history_bytes") - before_history
    rss = rss_kib(pid) - before_rss
    return {
        "rooms": rooms,
        "moves_per_room": moves,
        "room_json_bytes_per_room": room_bytes // rooms,
        "history_bytes_per_room": int(history // rooms),
        "rss_delta_kib": rss,
        "rss_delta_kib_per_room": round(rss / rooms),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listeners", type=int, default=1000)
    parser.add_argument("--moves", type=int, default=1100)
    parser.add_argument("--rooms", type=int, default=1,
                        help="rooms filled and moved for the memory figure (RSS per room)")
    args = parser.parse_args()
    binary = os.environ.get("SYNCROOM_BIN")
    if not binary:
        subprocess.run(["cargo", "build", "--quiet", "--release", "-p", "syncroom"], cwd=ROOT,
                       check=True)
        target = subprocess.run([os.path.join(ROOT, "scripts/target-dir")], cwd=ROOT,
                                check=True, capture_output=True, text=True).stdout.strip()
        binary = os.path.join(target, "release", "syncroom")
    port = free_port()
    server = subprocess.Popen(
        [binary, "--listen", f"127.0.0.1:{port}", "--commands-per-minute", "1000000",
         "--commands-burst", "100000", "--max-streams-per-client", "100000",
         "--rooms-per-minute", "1000", "--rooms-burst", "100", "--max-rooms-per-client", "1000",
         "--max-queue", "1000"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "RUST_LOG": "warn"})
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        api = Api(port)
        result = {"memory": memory(api, server.pid, args.moves, args.rooms),
                  "wire": asyncio.run(wire(port, Api(port), args.listeners))}
        print(json.dumps(result, indent=2))
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
