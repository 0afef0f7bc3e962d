#!/usr/bin/env python3
"""What a room command costs Redis over a Redis Cluster: counted, and with
--latency, what waiting for a replica adds to its answer.

Starts a cluster of 3 primaries + 3 replicas (redis-server --cluster-enabled,
redis-cli --cluster create) on free ports, and 4 syncroom nodes on it
(--redis-cluster). Then, for one room X, sends COMMANDS seeks and counts the
Redis commands each one costs on every primary (INFO commandstats, reset
before each step, an idle window of the same length subtracted):

  1. X served by 1 node (one listener on node 0), nothing else going on;
  2. the same, while 3 more nodes serve 3 rooms of their own on the other
     shards (a listener each) and those rooms take commands too;
  3. X served by all 4 nodes (a listener on each).

The claim to check: the cost of X's command is on X's shard only, does not
change when nodes that do not serve X or rooms on other shards are added,
and grows with the nodes serving X only in what Redis delivers (one SPUBLISH,
one message per subscribed node), not in commands.

Counts do not depend on the machine's speed. CPU is not measured (noise with
ten processes on two cores).

    bench/cluster_cost.py [--commands 200]

With --latency, it times instead what --redis-wait-replicas costs a command:
one syncroom node on the same cluster, one room, one listener, SEEKS seeks
sent one after the other, and the p50/p99 of the POST /commands answer as the
client sees it. The node is restarted for each run, alternating
--redis-wait-replicas 0 and 1 (RUNS runs of each, 0 first): on a shared,
noisy machine only alternation makes the two comparable. Use a release build.

    bench/cluster_cost.py --latency [--seeks 300] [--runs 3]

Uses the newer of target/release/syncroom and target/debug/syncroom
(SYNCROOM_BIN overrides). Not part of scripts/test.
"""
import argparse
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cli(port, *args):
    out = subprocess.run(["redis-cli", "-p", str(port), *args],
                         capture_output=True, text=True, timeout=30)
    return out.stdout.strip()


def start_cluster(tmp):
    nodes = []
    for _ in range(6):
        port, bus = free_port(), free_port()
        proc = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
             "--cluster-port", str(bus), "--cluster-enabled", "yes",
             "--cluster-config-file", f"nodes-{port}.conf",
             "--save", "", "--appendonly", "no", "--dir", tmp],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        nodes.append((port, proc))
    for port, _ in nodes:
        deadline = time.time() + 15
        while cli(port, "PING") != "PONG":
            if time.time() > deadline:
                sys.exit(f"redis on {port} did not start")
            time.sleep(0.05)
    addrs = [f"127.0.0.1:{port}" for port, _ in nodes]
    subprocess.run(["redis-cli", "--cluster", "create", *addrs,
                    "--cluster-replicas", "1", "--cluster-yes"],
                   capture_output=True, check=True, timeout=60)
    deadline = time.time() + 30
    while not all("cluster_state:ok" in cli(p, "CLUSTER", "INFO") for p, _ in nodes):
        if time.time() > deadline:
            sys.exit("the cluster did not settle")
        time.sleep(0.1)
    time.sleep(2)  # gossip about replicas settles after cluster_state:ok
    return nodes


def primaries(port):
    """{primary port: (first slot, last slot)} from CLUSTER SHARDS-free parsing of CLUSTER NODES."""
    found = {}
    for line in cli(port, "CLUSTER", "NODES").splitlines():
        fields = line.split()
        if "master" in fields[2] and len(fields) > 8:
            found[int(fields[1].split(":")[1].split("@")[0])] = fields[8]
    return found


def shard_of(port, room, owners):
    slot = int(cli(port, "CLUSTER", "KEYSLOT", f"syncroom:{{{room}}}:room"))
    for primary, span in owners.items():
        first, last = (int(x) for x in span.split("-"))
        if first <= slot <= last:
            return primary
    sys.exit(f"no primary serves slot {slot}")


def request(port, method, path, body=None, token=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    conn.request(method, path, json.dumps(body) if body is not None else None, headers)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, json.loads(data) if data else None


def listen(port, room, stop):
    """Holds an event stream open on `port`, reading and dropping what comes."""
    def run():
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(f"GET /api/rooms/{room}/events HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            sock.settimeout(0.5)
            while not stop.is_set():
                try:
                    if not sock.recv(65536):
                        return
                except socket.timeout:
                    pass
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def stats(ports):
    counts = {}
    for port in ports:
        text = cli(port, "INFO", "commandstats")
        counts[port] = {m.group(1): int(m.group(2))
                        for m in re.finditer(r"cmdstat_([a-z|]+):calls=(\d+)", text)}
        # Redis's own time in the room scripts (their inner calls included).
        usec = re.search(r"cmdstat_evalsha:calls=\d+,usec=(\d+)", text)
        counts[port]["usec in evalsha"] = int(usec.group(1)) if usec else 0
    return counts


def reset(ports):
    for port in ports:
        cli(port, "CONFIG", "RESETSTAT")


def measure(primary_ports, work, seconds_hint):
    """Commands per primary during `work`, minus an idle window as long."""
    reset(primary_ports)
    started = time.time()
    work()
    took = time.time() - started
    busy = stats(primary_ports)
    reset(primary_ports)
    time.sleep(took)
    idle = stats(primary_ports)
    return {port: {cmd: busy[port].get(cmd, 0) - idle[port].get(cmd, 0)
                   for cmd in set(busy[port]) | set(idle[port])}
            for port in primary_ports}


def commands(port, room, token, n):
    def run():
        for i in range(n):
            status, _ = request(port, "POST", f"/api/rooms/{room}/commands",
                                {"type": "seek", "position": i + 1}, token)
            assert status == 200, status
    return run


def report(title, counts, x_shard, n):
    print(f"\n{title}")
    for port, per_cmd in sorted(counts.items()):
        usec = per_cmd.pop("usec in evalsha", 0)
        shown = {cmd: round(c / n, 2) for cmd, c in sorted(per_cmd.items()) if abs(c / n) >= 0.05}
        total = round(sum(per_cmd.values()) / n, 2)
        shown["usec in evalsha"] = round(usec / n, 1)
        role = "X's shard" if port == x_shard else "other shard"
        print(f"  {port} ({role}): {total} commands per X command {shown}")


def start_syncroom(binary, seeds, tmp, extra=()):
    """One syncroom node on the cluster, ready; returns (port, process)."""
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--listen", f"127.0.0.1:{port}", "--redis-cluster", seeds,
         "--rooms-per-minute", "1000", "--rooms-burst", "1000",
         "--max-rooms-per-client", "1000", "--commands-per-minute", "100000",
         "--commands-burst", "100000", *extra],
        stdout=subprocess.DEVNULL, stderr=open(f"{tmp}/syncroom-{port}.log", "w"))
    deadline = time.time() + 20
    while True:
        try:
            if request(port, "GET", "/readyz")[0] == 200:
                return port, proc
        except OSError:
            pass
        if time.time() > deadline:
            proc.kill()
            with open(f"{tmp}/syncroom-{port}.log") as log:
                sys.exit(f"syncroom on {port} never became ready:\n{log.read()[-2000:]}")
        time.sleep(0.1)


def percentile(sorted_ms, p):
    return sorted_ms[min(len(sorted_ms) - 1, int(len(sorted_ms) * p / 100))]


def latency_run(binary, seeds, tmp, wait, seeks, shards):
    """p50/p99 (ms) of a seek's answer on a fresh node with --redis-wait-replicas `wait`,
    and the WAITs the primaries took per timed seek (0 or 1: the setting did act)."""
    port, proc = start_syncroom(binary, seeds, tmp, ["--redis-wait-replicas", str(wait)])
    stop = threading.Event()
    try:
        status, body = request(port, "POST", "/api/rooms", {"video_id": "dQw4w9WgXcQ"})
        assert status == 201, (status, body)
        room, token = body["room_id"], body["host_token"]
        listen(port, room, stop)
        time.sleep(0.5)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        headers = {"content-type": "application/json", "authorization": f"Bearer {token}"}

        def seek(position):
            started = time.perf_counter()
            conn.request("POST", f"/api/rooms/{room}/commands",
                         json.dumps({"type": "seek", "position": position}), headers)
            response = conn.getresponse()
            response.read()
            took = (time.perf_counter() - started) * 1000
            assert response.status == 200, response.status
            return took

        for i in range(20):  # warm-up: connections, scripts loaded, caches
            seek(i + 1)
        reset(shards)
        times = sorted(seek(i + 21) for i in range(seeks))
        waits = sum(counts.get("wait", 0) for counts in stats(shards).values())
        conn.close()
        return percentile(times, 50), percentile(times, 99), waits / seeks
    finally:
        stop.set()
        proc.kill()
        proc.wait()


def wait_replicas_attached(owners):
    """Until every primary has its replica online, so that WAIT 1 can be answered."""
    deadline = time.time() + 30
    while not all("connected_slaves:1" in (info := cli(port, "INFO", "replication"))
                  and "state=online" in info for port in owners):
        if time.time() > deadline:
            sys.exit("a primary has no replica online")
        time.sleep(0.1)


def latency(binary, seeds, tmp, seeks, runs, shards):
    print(f"--redis-wait-replicas 0 and 1 alternating, {runs} runs each, {seeks} seeks a run, "
          f"one node, one room, one listener ({os.path.basename(os.path.dirname(binary))} build)")
    results = {0: [], 1: []}
    for _ in range(runs):
        for wait in (0, 1):
            load = os.getloadavg()[0]
            p50, p99, waits = latency_run(binary, seeds, tmp, wait, seeks, shards)
            results[wait].append((p50, p99))
            print(f"  wait-replicas {wait}: p50 {p50:.2f} ms  p99 {p99:.2f} ms  "
                  f"WAIT per seek {waits:.2f}  (load average {load:.2f})", flush=True)
    for wait, found in results.items():
        p50s = sorted(r[0] for r in found)
        p99s = sorted(r[1] for r in found)
        print(f"wait-replicas {wait}: p50 median of runs {p50s[len(p50s) // 2]:.2f} ms "
              f"(range {p50s[0]:.2f}-{p50s[-1]:.2f}), p99 median {p99s[len(p99s) // 2]:.2f} ms "
              f"(range {p99s[0]:.2f}-{p99s[-1]:.2f})")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--commands", type=int, default=200)
    parser.add_argument("--latency", action="store_true",
                        help="time commands with --redis-wait-replicas 0 and 1 instead")
    parser.add_argument("--seeks", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    built = [p for p in (f"{ROOT}/target/release/syncroom", f"{ROOT}/target/debug/syncroom")
             if os.path.exists(p)]
    binary = os.environ.get("SYNCROOM_BIN") or max(built, key=os.path.getmtime, default=None)
    if not binary or not shutil.which("redis-server"):
        sys.exit("needs a built syncroom and redis-server")
    tmp = tempfile.mkdtemp(prefix="cluster-cost-")
    procs = []
    stop = threading.Event()
    try:
        nodes = start_cluster(tmp)
        procs += [proc for _, proc in nodes]
        seed = nodes[0][0]
        owners = primaries(seed)
        seeds = ",".join(f"redis://127.0.0.1:{p}" for p, _ in nodes)
        if args.latency:
            wait_replicas_attached(owners)
            latency(binary, seeds, tmp, args.seeks, args.runs, list(owners))
            return
        http_ports = []
        for _ in range(4):
            port, proc = start_syncroom(binary, seeds, tmp)
            http_ports.append(port)
            procs.append(proc)
        # Rooms until X and one room on each other shard are known.
        rooms = {}
        for i in range(60):
            status, body = request(http_ports[0], "POST", "/api/rooms", {"video_id": "dQw4w9WgXcQ"})
            assert status == 201, (status, body)
            shard = shard_of(seed, body["room_id"], owners)
            rooms.setdefault(shard, (body["room_id"], body["host_token"]))
            if len(rooms) == len(owners):
                break
        shards = sorted(rooms)
        x_shard = shards[0]
        x_room, x_token = rooms[x_shard]
        n = args.commands
        print(f"{len(owners)} shards (primaries {shards}), 4 syncroom nodes, {n} commands per step")

        listen(http_ports[0], x_room, stop)
        time.sleep(1)
        counts = measure(shards, commands(http_ports[0], x_room, x_token, n), n)
        report("1. X served by 1 node", counts, x_shard, n)

        others = [rooms[s] for s in shards[1:]]
        for node, (room, _) in zip(http_ports[1:], others):
            listen(node, room, stop)
        time.sleep(1)
        def with_others():
            threads = [threading.Thread(target=commands(node, room, token, n))
                       for node, (room, token) in zip(http_ports[1:], others)]
            for t in threads:
                t.start()
            commands(http_ports[0], x_room, x_token, n)()
            for t in threads:
                t.join()
        counts = measure(shards, with_others, n)
        report("2. X served by 1 node, 3 more nodes serving rooms on the other shards, "
               "each room taking as many commands (other shards' counts are theirs)",
               counts, x_shard, n)

        for node in http_ports[1:]:
            listen(node, x_room, stop)
        time.sleep(1)
        counts = measure(shards, commands(http_ports[0], x_room, x_token, n), n)
        report("3. X served by all 4 nodes", counts, x_shard, n)
        subs = cli(x_shard, "PUBSUB", "SHARDNUMSUB", f"syncroom:{{{x_room}}}:feed")
        print(f"\nsubscribers of X's feed on its shard: {subs.split()[-1]} (one per node serving X)")
    finally:
        stop.set()
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
