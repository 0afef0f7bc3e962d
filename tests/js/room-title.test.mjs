// The page's titles for rooms (static/room-title.js): names as given, chosen ids as
// they are, and a friendly two-word title instead of a generated hex id.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { roomTitle, friendlyName, isGeneratedId } from '../../static/room-title.js';

const hex = '141e9de560e245a79096f8ed5be7e724';

test('a named room is called by its name', () => {
  assert.equal(roomTitle({ room_id: hex, name: 'Friday mix' }), 'Friday mix');
});

test('an unnamed room with a generated id gets a stable friendly title, never the hex id', () => {
  for (const room of [{ room_id: hex }, { room_id: hex, name: hex }, { room_id: hex, name: '  ' }]) {
    const title = roomTitle(room);
    assert.match(title, /^[A-Z][a-z]+ [A-Z][a-z]+$/);
    assert.equal(title, friendlyName(hex));
  }
  assert.notEqual(friendlyName(hex), friendlyName('241e9de560e245a79096f8ed5be7e724'));
});

test('a chosen id is its own title', () => {
  assert.equal(roomTitle({ room_id: 'friday' }), 'friday');
  assert.equal(isGeneratedId('friday'), false);
  assert.equal(isGeneratedId(hex), true);
  assert.equal(roomTitle(null), 'Room');
});
