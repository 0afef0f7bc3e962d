// The client package as a stranger gets it: `npm pack` on
// clients/js, the tarball installed into a scratch project in a temp dir next to
// its locked dependencies (the `eventsource` package, and TypeScript to check the
// package's declarations; tests/client-package/project/package-lock.json), and the
// package's own Node example (clients/js/examples/node-follow.mjs) run there against
// a live server.
//
// Between the example and the server sits a TCP proxy of this test, so it can cut
// the event stream, change the room while the example is away, and read the
// request the example's EventSource sends when it comes back.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { ROOT, startServer, waitFor } from '../browser/helpers.mjs';

const PACKAGE_DIR = path.join(ROOT, 'clients', 'js');
const TEMPLATE = path.join(ROOT, 'tests', 'client-package', 'project');
const pkg = JSON.parse(fs.readFileSync(path.join(PACKAGE_DIR, 'package.json'), 'utf8'));

let work;
let project;
let packed;
let server;

const npm = (args, cwd) => execFileSync('npm', [...args, '--no-audit', '--no-fund', '--prefer-offline'], {
  cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'],
});

before(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'syncroom-client-pack-'));
  packed = JSON.parse(npm(['pack', '--json', '--pack-destination', work], PACKAGE_DIR))[0];
  project = path.join(work, 'project');
  fs.mkdirSync(project);
  for (const f of ['package.json', 'package-lock.json']) fs.copyFileSync(path.join(TEMPLATE, f), path.join(project, f));
  npm(['ci'], project);
  npm(['install', '--no-save', path.join(work, packed.filename)], project);
  fs.copyFileSync(path.join(PACKAGE_DIR, 'examples', 'node-follow.mjs'), path.join(project, 'node-follow.mjs'));
  server = await startServer('client-package');
});

after(async () => {
  if (server) await server.stop();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

test('the tarball holds the modules, their types and the README, and nothing else', () => {
  const files = packed.files.map((f) => f.path).sort();
  for (const f of ['package.json', 'README.md', 'index.js', 'index.d.ts', 'sim-player.d.ts', 'api.js', 'clock.js',
    'player-sync.js', 'room.js', 'sync-core.js', 'sim-player.js', 'version.js']) {
    assert.ok(files.includes(f), `${f} is in the tarball (${files.join(', ')})`);
  }
  assert.ok(!files.some((f) => f.startsWith('node_modules/') || f.endsWith('.test.mjs')), files.join(', '));
  assert.equal(packed.name, 'syncroom-client');
  assert.equal(packed.version, pkg.version);
});

test('the installed package resolves through its exports, and says its version', () => {
  const script = "import('syncroom-client').then(async (m) => { const v = (await import('syncroom-client/package.json', { with: { type: 'json' } })).default.version; "
    + "console.log(JSON.stringify({ version: m.VERSION, pkg: v, names: Object.keys(m).sort() })); })";
  const out = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: project, encoding: 'utf8' }));
  assert.equal(out.version, pkg.version);
  assert.equal(out.pkg, pkg.version);
  for (const name of ['SyncRoom', 'ServerClock', 'PlayerSync', 'PlayerState', 'PlayerMode', 'DEFAULT_CORRECTION',
    'createRoom', 'sendCommand', 'ApiError', 'roomPosition']) {
    assert.ok(out.names.includes(name), `exports ${name}`);
  }
  // The type declarations cover exactly what index.js exports.
  const declared = [...fs.readFileSync(path.join(project, 'node_modules', 'syncroom-client', 'index.d.ts'), 'utf8')
    .matchAll(/^export declare (?:const|function|class) (\w+)/gm)].map((m) => m[1]).sort();
  assert.deepEqual(declared, out.names);
  // Internal files are not importable past the exports map.
  assert.throws(() => execFileSync(process.execPath, ['--input-type=module', '-e', "await import('syncroom-client/room.js')"],
    { cwd: project, stdio: 'pipe' }), /ERR_PACKAGE_PATH_NOT_EXPORTED/);
});

test('the installed type declarations compile under tsc --strict', () => {
  // A project that imports every declaration file the package ships, as a TypeScript user does.
  const types = path.join(project, 'node_modules', 'syncroom-client');
  const files = fs.readdirSync(types).filter((f) => f.endsWith('.d.ts')).map((f) => path.join(types, f));
  assert.ok(files.length >= 3, `declarations shipped: ${files}`);
  const tsc = path.join(project, 'node_modules', 'typescript', 'bin', 'tsc');
  try {
    execFileSync(process.execPath, [tsc, '--noEmit', '--strict', '--lib', 'es2022,dom', ...files],
      { cwd: project, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    assert.fail(`tsc refused the declarations:\n${e.stdout}${e.stderr}`);
  }
});

/** A TCP proxy that can cut every connection, hold new ones, and shows each request head. */
function startProxy(target) {
  const sockets = new Set();
  const heads = [];
  let gate = null;
  const srv = net.createServer(async (client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => {});
    client.pause();
    if (gate) await gate.promise;
    const upstream = net.connect(target.port, '127.0.0.1');
    sockets.add(upstream);
    upstream.on('close', () => { sockets.delete(upstream); client.destroy(); });
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    let head = '';
    client.on('data', (chunk) => {
      if (head !== null) {
        head += chunk.toString('latin1');
        const end = head.indexOf('\r\n\r\n');
        if (end >= 0) { heads.push(head.slice(0, end)); head = null; }
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk) => client.write(chunk));
    client.resume();
  });
  return new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve({
    url: `http://127.0.0.1:${srv.address().port}`,
    heads,
    /** Cuts every open connection and holds new ones until `open()`. */
    cut() {
      let release;
      gate = { promise: new Promise((r) => { release = r; }), release };
      for (const s of sockets) s.destroy();
    },
    open() { if (gate) gate.release(); gate = null; },
    close() { for (const s of sockets) s.destroy(); srv.close(); },
  })));
}

test('the Node example connects, follows a command, and resumes after a drop with Last-Event-ID', async (t) => {
  const created = await (await fetch(`${server.url}/api/rooms`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'Packed' }),
  })).json();
  const roomId = created.room_id;
  const command = async (body) => {
    const res = await fetch(`${server.url}/api/rooms/${roomId}/commands`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${created.host_token}` },
      body: JSON.stringify(body),
    });
    assert.equal(res.status, 200, await res.clone().text());
    return res.json();
  };

  const proxy = await startProxy(server);
  t.after(() => proxy.close());
  const child = spawn(process.execPath, ['node-follow.mjs', proxy.url, roomId], { cwd: project, stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => child.kill('SIGKILL'));
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const lines = [];
  readline.createInterface({ input: child.stdout }).on('line', (line) => {
    try { lines.push(JSON.parse(line)); } catch { lines.push({ event: 'unparsed', line }); }
  });
  const seen = (pred, what) => waitFor(() => lines.find(pred), { timeout: 20000, what: `${what} (stderr: ${stderr}; lines: ${JSON.stringify(lines.slice(-5))})` });

  // 1. Connect: live, one snapshot of this room, the server clock known.
  await seen((l) => l.event === 'connection' && l.status === 'live', 'the stream to go live');
  const snapshot = await seen((l) => l.event === 'snapshot', 'the snapshot');
  assert.equal(snapshot.state.video_id, null);
  await seen((l) => l.event === 'clock', 'the clock to be synchronized');
  const firstStream = proxy.heads.find((h) => h.includes('/events'));
  assert.ok(firstStream && !/last-event-id/i.test(firstStream), firstStream);

  // 2. Follow a command: the state event arrives with the new version and position.
  const loaded = await command({ type: 'load', video_id: 'dQw4w9WgXcQ', position: 30 });
  const followed = await seen((l) => l.event === 'state' && l.version === loaded.version, 'the load to be followed');
  assert.equal(followed.state.video_id, 'dQw4w9WgXcQ');
  assert.ok(Math.abs(followed.position - 30) < 0.5, `position ${followed.position}`);
  assert.equal(followed.lastEventId, loaded.version);

  // 3. Drop: cut the stream, change the room while the example is away, let it back.
  const streamsBefore = proxy.heads.filter((h) => h.includes('/events')).length;
  proxy.cut();
  await seen((l) => l.event === 'connection' && l.status === 'reconnecting', 'the drop to be noticed');
  const missed = await command({ type: 'seek', position: 120 });
  proxy.open();
  const resumed = await seen((l) => l.event === 'state' && l.version === missed.version, 'the missed seek to be replayed');
  assert.equal(resumed.cause, 'seek');
  assert.ok(Math.abs(resumed.state.position - 120) < 1e-6);
  // The reconnection asked for what followed the last id it saw, and got a replay, not a snapshot.
  const reconnect = proxy.heads.filter((h) => h.includes('/events')).slice(streamsBefore);
  assert.ok(reconnect.some((h) => new RegExp(`^last-event-id: ${loaded.version}$`, 'im').test(h)),
    `a request with Last-Event-ID ${loaded.version}: ${JSON.stringify(reconnect)}`);
  assert.equal(resumed.stats.snapshots, 1, JSON.stringify(resumed.stats));
  assert.equal(resumed.stats.gaps, 0, JSON.stringify(resumed.stats));
  assert.ok(resumed.stats.opens >= 2, JSON.stringify(resumed.stats));
  await seen((l) => l.event === 'connection' && l.status === 'live' && l.stats.opens >= 2, 'the stream to be live again');
});
