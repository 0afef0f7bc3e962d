// Unit tests of the client's media helpers (clients/js/api.js).
// Run: node --test tests/js/
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { mediaArtUrl } from '../../clients/js/api.js';

test("a /media/ item's cover art is at /api/media/art/ with the same encoded path", () => {
  assert.equal(mediaArtUrl('/media/albums/one%20two.mp3'), '/api/media/art/albums/one%20two.mp3');
  assert.equal(mediaArtUrl('/media/a.ogg?t=3#x', 'http://host:8080'), 'http://host:8080/api/media/art/a.ogg');
});

test('any other URL has no art on this server', () => {
  for (const url of ['https://example.com/media/a.mp3', '/static/a.mp3', '/media/', '', null, undefined, 42]) {
    assert.equal(mediaArtUrl(url), null, String(url));
  }
});
