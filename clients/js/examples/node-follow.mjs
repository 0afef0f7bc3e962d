// Follows one room from Node and prints what happens, one JSON object a line.
//
//   npm install syncroom-client eventsource
//   node node-follow.mjs http://127.0.0.1:8080 friday
//
// Node has fetch, EventTarget and CustomEvent, but no EventSource: the
// `eventsource` package supplies it (v4 runs on Node 20+). The browser's
// EventSource and this one both reconnect by themselves after a drop, sending
// `Last-Event-ID`, and the server replays what was missed: the `stats` printed
// with each event show one snapshot and no gaps across a reconnection.
import { EventSource } from 'eventsource';
import { SyncRoom, formatTime } from 'syncroom-client';

const [baseUrl = 'http://127.0.0.1:8080', roomId = 'friday'] = process.argv.slice(2);

const room = new SyncRoom({ roomId, baseUrl, name: 'node-example', EventSource });
const print = (event, fields = {}) => console.log(JSON.stringify({
  event, ...fields, lastEventId: room.lastEventId, stats: room.stats,
}));

room.addEventListener('connection', (e) => print('connection', { status: e.detail.status }));
room.addEventListener('snapshot', (e) => print('snapshot', { version: e.detail.version, state: e.detail.state }));
room.addEventListener('state', (e) => print('state', {
  version: e.detail.version,
  cause: e.detail.cause,
  state: e.detail.state,
  // Where the room is now, by the server's clock (estimated NTP style).
  position: room.roomPosition(),
  at: formatTime(room.roomPosition()),
}));
room.addEventListener('chat', (e) => print('chat', { version: e.detail.version, name: e.detail.name, text: e.detail.text }));
room.addEventListener('closed', (e) => { print('closed', { reason: e.detail.reason }); process.exit(0); });

await room.start();
print('clock', { offsetMs: room.clockOffset() });

// Stop cleanly on Ctrl-C or when the parent closes stdin.
const stop = () => { room.stop(); process.exit(0); };
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
