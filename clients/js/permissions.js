/**
 * permissions.js — who may do what in a room, as its `permissions` say.
 *
 * A room gives each group of actions to `host` (the host token), `cohost` (the host's or a
 * live co-host's token) or `anyone` (no token). A server that predates permissions says
 * only `control`: the groups are then derived from it, as such a server behaves.
 *
 * @module permissions
 */

/** The groups of actions (see the API's "Who may do what"). */
export const Group = Object.freeze({
  /** play, pause, seek, rate, load, duration */
  PLAYBACK: 'playback',
  QUEUE_ADD: 'queue_add',
  /** queue_remove, queue_move, queue_mode */
  QUEUE_EDIT: 'queue_edit',
  /** next */
  SKIP: 'skip',
  /** kick, delete_chat; never `anyone` */
  MODERATE: 'moderate',
  /** sending chat */
  CHAT: 'chat',
});

/** Who a group is given to, and who a client is (its role). */
export const Who = Object.freeze({ HOST: 'host', COHOST: 'cohost', ANYONE: 'anyone' });

/** The groups `control` sets (`host` → all host, `open` → all anyone). */
const CONTROL_GROUPS = [Group.PLAYBACK, Group.QUEUE_ADD, Group.QUEUE_EDIT, Group.SKIP];

/**
 * A room's permissions: its `permissions` when it has them, else what its `control` means
 * (`open`: the four playback and queue groups to anyone; else to the host; `moderate` the
 * host's, `chat` anyone's). Missing groups take those defaults too.
 */
export function roomPermissions(room) {
  const open = Boolean(room && room.control === 'open');
  const out = { [Group.MODERATE]: Who.HOST, [Group.CHAT]: Who.ANYONE };
  for (const group of CONTROL_GROUPS) out[group] = open ? Who.ANYONE : Who.HOST;
  const given = room && room.permissions && typeof room.permissions === 'object' ? room.permissions : {};
  for (const group of Object.values(Group)) {
    if (Object.values(Who).includes(given[group])) out[group] = given[group];
  }
  return out;
}

/** Whether `role` (`host`, `cohost` or `anyone`) may act in a group given to `who`. */
export function admits(who, role) {
  if (role === Who.HOST) return true;
  if (role === Who.COHOST) return who === Who.COHOST || who === Who.ANYONE;
  return who === Who.ANYONE;
}

/** What `control` the permissions amount to: `host`, `open` or `custom` (as the server derives it). */
export function deriveControl(permissions) {
  const four = CONTROL_GROUPS.map((group) => permissions[group]);
  if (four.every((who) => who === Who.HOST)) return 'host';
  if (four.every((who) => who === Who.ANYONE)) return 'open';
  return 'custom';
}
