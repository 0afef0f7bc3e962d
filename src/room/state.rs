//! The pure room state machine: [`Room::apply`] turns (room, command, now) into
//! events, with no I/O, no tokio and no clock of its own. Everything that decides
//! what a room does lives here and is unit-tested here; the actor only sequences.
//!
//! The playback state is kept as "position at `updated_at`" and never ticks: the
//! current position is computed on demand ([`PlaybackState::position_at`]), which
//! is why nothing needs to be sent while a video simply plays.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::check::{check_text, CommandError, Empty};
pub use super::command::Access;
use super::command::{Command, ItemInfo, NewItem, PLAYLIST_NEEDS_KEY};
use super::event::{Cause, CloseReason, Event, EventKind, QueueChange};
use super::permissions::Cohost;
use super::permissions::{check_host_only, Caller, Group, Permissions};
use super::source::Source;
pub use super::view::{
    ChatMessage, Control, GateSettings, PlaybackState, QueueItem, QueueMode, RoomView, Visibility,
    MAX_GATE_DEADLINE_MS, MAX_GATE_QUORUM, MAX_POSITION,
};
use super::votes::VoteSkip;

/// Why `play` is refused in a room with no video loaded (`invalid_command`).
pub const NOTHING_LOADED: &str = "nothing is loaded";
pub use super::limits::{MAX_CHAT_NAME_CHARS, MAX_CHAT_TEXT_CHARS, MAX_ROOM_NAME_CHARS};
/// The end-of-video timer may wake a hair early by the wall clock; within this
/// many seconds of the end the video counts as ended.
const END_TOLERANCE: f64 = 0.05;
/// A `starts_at` up to this far in the past (ms) is taken as "now" (a host's
/// clock estimate may be a little behind); further back it is refused.
pub const START_PAST_TOLERANCE_MS: i64 = 1_000;
/// The furthest ahead (ms) a `starts_at` may lie.
pub const MAX_START_AHEAD_MS: i64 = 60_000;
/// How this server starts playback: its settings (`--start-lead-ms`,
/// `--gate-quorum`, `--gate-deadline-ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StartPolicy {
    /// How far ahead of now a start is scheduled; 0 starts at once.
    pub lead_ms: i64,
    /// The gate of rooms whose host set none.
    pub gate: GateSettings,
}

/// Everything a change depends on besides the room and what is asked of it,
/// given by the actor on every call: the room keeps none of it, so the same
/// room read back from any store decides the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inputs {
    /// Server time, Unix ms.
    pub now: i64,
    /// How this server schedules starts.
    pub starts: StartPolicy,
    /// Listeners (over every node) whose pages take part in the ready gate;
    /// with none, there is nobody to wait for.
    pub gate_listeners: u64,
    /// A random number the actor draws for each call: shuffle picks the
    /// queued item at `pick % len`, so the room itself stays deterministic.
    pub pick: u64,
}

impl Inputs {
    /// At `now`, under the default policy, with nobody taking part in a gate.
    pub fn at(now: i64) -> Self {
        Self {
            now,
            starts: StartPolicy::default(),
            gate_listeners: 0,
            pick: 0,
        }
    }
}

/// Everything a room is. Owned by exactly one actor; mutated only by the methods
/// below, each of which either fails having changed nothing or returns the events
/// that describe its change (each event one version).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Room {
    pub room_id: String,
    pub name: String,
    pub control: Control,
    /// The event counter: 1 at creation, +1 per id-carrying event.
    pub version: u64,
    pub state: PlaybackState,
    pub queue: Vec<QueueItem>,
    /// The host token's SHA-256; the token itself is never kept.
    pub host_token_hash: [u8; 32],
    /// Source of queue item ids, so they are unique and stable within the room.
    pub next_item_number: u64,
    /// Most items the queue may hold.
    pub max_queue: usize,
    /// Listed or not. Rooms kept before visibility existed load unlisted.
    #[serde(default)]
    pub visibility: Visibility,
    /// Whether chat messages are taken (the host can turn chat off).
    #[serde(default = "chat_on")]
    pub chat_enabled: bool,
    /// The client address that created the room, for `--max-rooms-per-client`.
    /// Never shown to clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creator: Option<core::net::IpAddr>,
    /// The last chat messages, oldest first, at most `chat_history`. Not part of
    /// the stored room: a backplane keeps them beside it (see `SharedRooms`).
    #[serde(skip)]
    pub chat: VecDeque<ChatMessage>,
    /// Most chat messages kept (`--chat-history`); 0 keeps none. The running
    /// server's setting, given after a room is created or read back.
    #[serde(skip)]
    pub chat_history: usize,
    /// The ready gate the host set (`ready_gate` command); `None` follows the
    /// server's flags.
    #[serde(default)]
    pub ready_gate: Option<GateSettings>,
    /// What `next` and the end of an item take from the queue.
    #[serde(default)]
    pub queue_mode: QueueMode,
    /// Exempt from `--room-ttl`. Rooms kept before this existed load as not.
    #[serde(default)]
    pub persistent: bool,
    /// Who may do what; `None` (a room kept before permissions existed, or
    /// never changed) follows `control`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Permissions>,
    /// The host's co-hosts (see `room::cohosts`).
    #[serde(default)]
    pub cohosts: Vec<Cohost>,
    /// Source of co-host ids, so that a revoked id is never given again.
    #[serde(default)]
    pub next_cohost_number: u64,
    /// The host's vote skip setting; rooms kept before it existed load off.
    #[serde(default)]
    pub vote_skip: VoteSkip,
    /// The version of the event that loaded the current item: what votes to
    /// skip are counted for (0 for the item of a room kept before votes).
    #[serde(default)]
    pub item_since: u64,
    /// The item (its `item_since`) the votes already paused at its end: an
    /// item is skipped by votes once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vote_skipped: Option<u64>,
}

fn chat_on() -> bool {
    true
}

/// How close (seconds) listeners' reported durations must be to agree.
pub const DURATION_AGREEMENT: f64 = 0.5;

/// The duration more than half of `reported` agree on within
/// [`DURATION_AGREEMENT`]: the median of the largest such group. Values out
/// of range are not counted.
pub fn agreed_duration(reported: &[f64]) -> Option<f64> {
    let mut valid: Vec<f64> = reported
        .iter()
        .copied()
        .filter(|d| d.is_finite() && *d > 0.0 && *d <= MAX_POSITION)
        .collect();
    valid.sort_by(f64::total_cmp);
    let mut best: Option<&[f64]> = None;
    for start in 0..valid.len() {
        let end = valid[start..]
            .iter()
            .position(|d| d - valid[start] > DURATION_AGREEMENT)
            .map_or(valid.len(), |n| start + n);
        let group = &valid[start..end];
        if best.is_none_or(|b| group.len() > b.len()) {
            best = Some(group);
        }
    }
    let group = best?;
    (group.len() * 2 > valid.len()).then(|| group[group.len() / 2])
}

/// A `load` command's fields, its `paused` defaulted.
struct Load {
    source: Source,
    position: Option<f64>,
    paused: bool,
    duration: Option<f64>,
    starts_at: Option<i64>,
    title: Option<String>,
    artist: Option<String>,
}

/// Why a chat message is refused in a room whose host turned chat off.
pub const CHAT_OFF: &str = "the host turned chat off in this room";

/// Hashes a host token for storage and comparison.
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Room {
    /// A new room at version 1. A room created with a video starts paused at 0,
    /// waiting for its host to press play.
    pub fn new(
        room_id: String,
        name: String,
        control: Control,
        source: Option<Source>,
        host_token: &str,
        max_queue: usize,
        now: i64,
    ) -> Self {
        let mut state = PlaybackState::empty(now);
        state.source = source;
        Self {
            room_id,
            name,
            control,
            version: 1,
            state,
            queue: Vec::new(),
            host_token_hash: hash_token(host_token),
            next_item_number: 1,
            max_queue,
            visibility: Visibility::Unlisted,
            chat_enabled: true,
            creator: None,
            chat: VecDeque::new(),
            chat_history: 0,
            ready_gate: None,
            queue_mode: QueueMode::Normal,
            persistent: false,
            permissions: None,
            cohosts: Vec::new(),
            next_cohost_number: 0,
            vote_skip: VoteSkip::default(),
            item_since: 0,
            vote_skipped: None,
        }
    }

    /// Who may do what in this room.
    pub fn permissions(&self) -> Permissions {
        self.permissions
            .unwrap_or_else(|| Permissions::new(self.control))
    }

    /// The gate this room uses: the host's, or the server's (`server`).
    pub fn gate(&self, server: GateSettings) -> GateSettings {
        self.ready_gate.unwrap_or(server)
    }

    /// The snapshot clients see; `server_gate` is the server's gate setting.
    pub fn view(&self, listeners: u64, now: i64, server_gate: GateSettings) -> RoomView {
        RoomView {
            room_id: self.room_id.clone(),
            name: self.name.clone(),
            control: self.permissions().control(),
            visibility: self.visibility,
            version: self.version,
            state: self.state.clone(),
            queue: self.queue.clone(),
            chat: self.chat.iter().cloned().collect(),
            ready_gate: self.gate(server_gate),
            chat_enabled: self.chat_enabled,
            queue_mode: self.queue_mode,
            listeners,
            server_time: now,
            sync: super::sync::SyncSummary::default(),
            persistent: self.persistent,
            permissions: self.permissions(),
            cohosts: self.cohost_views(),
            vote_skip: self.vote_skip,
            // The drivers know who listens: they fill these in.
            members: Vec::new(),
            unnamed: 0,
        }
    }

    /// Who `token` makes its caller: the host, a co-host, or anyone without one.
    /// `None`: a token that is no one's. The comparison of hashes is in
    /// constant time, so response timing tells nothing about the token.
    pub fn caller(&self, token: Option<&str>) -> Option<Caller> {
        let Some(token) = token else {
            return Some(Caller::Anyone);
        };
        let hash = hash_token(token);
        if bool::from(hash.ct_eq(&self.host_token_hash)) {
            return Some(Caller::Host);
        }
        self.is_cohost(&hash).then_some(Caller::Cohost)
    }

    /// Checks the caller's token for `access`; `what` names a host-only
    /// action in the refusal a co-host gets.
    pub fn authorize_for(
        &self,
        token: Option<&str>,
        access: Access,
        what: &str,
    ) -> Result<Caller, CommandError> {
        if access == Access::Server {
            // The server's own input: no client sent it, so no token is asked for.
            return Ok(Caller::Host);
        }
        // A token that is no one's counts as none, but is refused as wrong
        // rather than as missing: in an open group it changes nothing.
        let (caller, wrong) = match self.caller(token) {
            Some(caller) => (caller, false),
            None => (Caller::Anyone, true),
        };
        let checked = match access {
            Access::Group(group) => self.permissions().check(group, caller),
            Access::HostOnly | Access::Server => check_host_only(caller, what),
        };
        match checked {
            Err(CommandError::Unauthorized(_)) if wrong => Err(CommandError::Forbidden),
            other => other.map(|()| caller),
        }
    }

    /// [`Room::authorize_for`] for calls that are not commands.
    pub fn authorize(&self, token: Option<&str>, access: Access) -> Result<(), CommandError> {
        self.authorize_for(token, access, "this action").map(|_| ())
    }

    /// The `expected_version` guard: refuses unless the room is at `expected`.
    pub fn check_version(&self, expected: Option<u64>) -> Result<(), CommandError> {
        match expected {
            Some(expected) if expected != self.version => Err(CommandError::VersionConflict {
                expected,
                actual: self.version,
            }),
            _ => Ok(()),
        }
    }

    /// A client's command, whole: the caller's `token` is checked for what the
    /// command needs, then `expected_version`, then the command is applied.
    /// Every store runs exactly this on the room it holds.
    pub fn decide(
        &mut self,
        token: Option<&str>,
        expected_version: Option<u64>,
        command: Command,
        inputs: &Inputs,
    ) -> Result<Vec<Event>, CommandError> {
        self.authorize_for(token, command.access(), command.type_name())?;
        self.check_version(expected_version)?;
        self.apply(command, inputs)
    }

    /// Applies one command at `inputs.now`. On error nothing has changed. An
    /// empty list means the command changed nothing (and the version stays).
    /// `play` with nothing loaded is refused ([`NOTHING_LOADED`]).
    pub fn apply(&mut self, command: Command, inputs: &Inputs) -> Result<Vec<Event>, CommandError> {
        command.validate()?;
        let now = inputs.now;
        match command {
            Command::Play {
                position,
                starts_at,
            } => {
                let state = self.play(position, starts_at, inputs)?;
                Ok(self.change_state(state, Cause::Play, now))
            }
            Command::Pause { position } => {
                let mut state = self.state.anchored_at(now);
                if let Some(position) = position {
                    state.position = state.clamp(position);
                }
                // A pending start is called off.
                state.paused = true;
                state.starts_at = None;
                state.ready_gate = None;
                Ok(self.change_state(state, Cause::Pause, now))
            }
            Command::Seek { position } => {
                let mut state = self.state.anchored_at(now);
                state.position = state.clamp(position);
                Ok(self.change_state(state, Cause::Seek, now))
            }
            Command::Load {
                source,
                position,
                paused,
                duration,
                starts_at,
                title,
                artist,
            } => {
                let info = ItemInfo {
                    title,
                    artist,
                    duration,
                }
                .checked()?;
                let load = Load {
                    source,
                    position,
                    paused: paused.unwrap_or(false),
                    duration: info.duration,
                    starts_at,
                    title: info.title,
                    artist: info.artist,
                };
                let state = self.load(load, inputs)?;
                Ok(self.change_state(state, Cause::Load, now))
            }
            Command::Rate { rate } => {
                let mut state = self.state.anchored_at(now);
                state.rate = rate;
                Ok(self.change_state(state, Cause::Rate, now))
            }
            Command::Duration { duration } => {
                let mut state = self.state.anchored_at(now);
                state.duration = Some(duration);
                state.position = state.clamp(state.position);
                Ok(self.change_state(state, Cause::Duration, now))
            }
            Command::Next {} => Ok(self.advance(inputs, Cause::Next)),
            Command::QueuePlaylist { .. } => {
                Err(CommandError::InvalidCommand(PLAYLIST_NEEDS_KEY.into()))
            }
            Command::ItemInfo { item_id, info } => Ok(self.item_info(item_id, info, now)),
            queue @ (Command::QueueAdd { .. }
            | Command::QueueRemove { .. }
            | Command::QueueMove { .. }) => self.apply_to_queue(queue, now),
            Command::DeleteChat { chat_version } => self.delete_chat(chat_version, now),
            // The stream's end and refusal are the driver's: nothing here changes.
            Command::Kick { .. } => Ok(Vec::new()),
            setting => Ok(self.apply_setting(setting, now)),
        }
    }

    /// The state `play` asks for: from the paused (or given) position, at a
    /// start moment (`starts_at`, or a lead from now).
    fn play(
        &self,
        position: Option<f64>,
        starts_at: Option<i64>,
        inputs: &Inputs,
    ) -> Result<PlaybackState, CommandError> {
        let (current, now) = (&self.state, inputs.now);
        if current.source.is_none() {
            return Err(CommandError::InvalidCommand(NOTHING_LOADED.into()));
        }
        let mut at = self.start_moment(starts_at, inputs)?;
        if starts_at.is_none() {
            // "Start now" on a pending start never puts it off.
            at = current.starts_at.map_or(at, |pending| pending.min(at));
        }
        let mut state = current.anchored_at(now);
        if let Some(position) = position {
            state.position = state.clamp(position);
        } else if state.duration.is_some_and(|d| state.position >= d) {
            // Play on an ended video starts it again, as players do.
            state.position = 0.0;
        }
        if starts_at.is_none() && !current.paused {
            // Already playing: no pause for a lead, as before.
            Ok(state)
        } else {
            Ok(state.start_at(at, now))
        }
    }

    /// The state a `load` asks for: the new item at its position, paused or
    /// set to start (at `starts_at`, after the gate, or a lead from now).
    fn load(&self, load: Load, inputs: &Inputs) -> Result<PlaybackState, CommandError> {
        let now = inputs.now;
        if load.paused && load.starts_at.is_some() {
            return Err(CommandError::InvalidValue(
                "`starts_at` schedules a start: it cannot come with `paused: true`".into(),
            ));
        }
        let at = load
            .starts_at
            .map(|t| self.start_moment(Some(t), inputs))
            .transpose()?;
        let mut state = PlaybackState {
            source: Some(load.source),
            duration: load.duration,
            title: load.title,
            artist: load.artist,
            ..self.state.fresh(now)
        };
        state.position = state.clamp(load.position.unwrap_or(0.0));
        if !load.paused {
            state = self.start_item(state, at, inputs);
        }
        Ok(state)
    }

    /// `queue_add`, `queue_remove` and `queue_move`: one `queue` event, or none
    /// for a move to where the item is. Many items are added all or none.
    fn apply_to_queue(&mut self, command: Command, now: i64) -> Result<Vec<Event>, CommandError> {
        let change = match command {
            Command::QueueAdd { items } => {
                if self.queue.len() + items.len() > self.max_queue {
                    return Err(CommandError::InvalidValue(format!(
                        "the queue is full ({} items, at most {})",
                        self.queue.len(),
                        self.max_queue
                    )));
                }
                let checked = items
                    .into_iter()
                    .map(NewItem::checked)
                    .collect::<Result<Vec<_>, _>>()?;
                let items: Vec<QueueItem> = checked
                    .into_iter()
                    .map(|item| QueueItem {
                        item_id: self.new_item_id(),
                        source: item.source,
                        title: item.title,
                        artist: item.artist,
                        duration: item.duration,
                        added_by: item.name,
                    })
                    .collect();
                self.queue.extend(items.iter().cloned());
                QueueChange::Add { items }
            }
            Command::QueueRemove { item_id } => {
                let index = self.queue_index(&item_id)?;
                self.queue.remove(index);
                QueueChange::Remove {
                    item_ids: vec![item_id],
                }
            }
            Command::QueueMove { item_id, index } => {
                let from = self.queue_index(&item_id)?;
                // Past the end means "to the end", as a drag to the bottom does.
                let to = usize::try_from(index)
                    .unwrap_or(usize::MAX)
                    .min(self.queue.len() - 1);
                if from == to {
                    return Ok(Vec::new());
                }
                let item = self.queue.remove(from);
                self.queue.insert(to, item);
                QueueChange::Move {
                    item_id,
                    index: to as u64,
                }
            }
            _ => return Ok(Vec::new()),
        };
        Ok(vec![self.event(now, EventKind::Queue { change })])
    }

    /// What listeners' reported durations are kept for: the loaded queue item,
    /// or for an item loaded by `load` its source.
    pub fn reported_item(&self) -> String {
        match (&self.state.item_id, &self.state.source) {
            (Some(item_id), _) => item_id.clone(),
            (None, Some(Source::Video(id))) => format!("video:{id}"),
            (None, Some(Source::Media(url))) => format!("media:{url}"),
            (None, None) => String::new(),
        }
    }

    /// The durations listeners' players reported for the loaded item (one per
    /// reporting stream): while the room's duration is unknown, it takes the
    /// one more than half of them agree on within [`DURATION_AGREEMENT`]
    /// seconds (one stream is enough). One `state` event, cause `duration`;
    /// nothing when the duration is known or the reports disagree.
    pub fn take_reported_duration(&mut self, reported: &[f64], now: i64) -> Vec<Event> {
        if self.state.source.is_none() || self.state.duration.is_some() {
            return Vec::new();
        }
        let Some(duration) = agreed_duration(reported) else {
            return Vec::new();
        };
        let mut state = self.state.anchored_at(now);
        state.duration = Some(duration);
        state.position = state.clamp(state.position);
        self.change_state(state, Cause::Duration, now)
    }

    /// The next queue item id, unique within the room.
    fn new_item_id(&mut self) -> String {
        let item_id = format!("q{}", self.next_item_number);
        self.next_item_number += 1;
        item_id
    }

    /// Metadata that arrived later, for a queued item (one `queue` event, op
    /// `update`) or the loaded one (one `state` event, cause `duration`). Fills
    /// only what is unknown; nothing when that changes nothing.
    fn item_info(&mut self, item_id: Option<String>, info: ItemInfo, now: i64) -> Vec<Event> {
        let Ok(info) = info.checked() else {
            return Vec::new();
        };
        let fill = |known: &mut Option<String>, new: &Option<String>| {
            if known.is_none() && new.is_some() {
                known.clone_from(new);
            }
        };
        let queued = item_id
            .as_ref()
            .and_then(|id| self.queue.iter_mut().find(|item| &item.item_id == id));
        if let Some(item) = queued {
            let before = item.clone();
            fill(&mut item.title, &info.title);
            fill(&mut item.artist, &info.artist);
            item.duration = item.duration.or(info.duration);
            if *item == before {
                return Vec::new();
            }
            let change = QueueChange::Update {
                items: vec![item.clone()],
            };
            return vec![self.event(now, EventKind::Queue { change })];
        }
        if item_id.is_some() && item_id != self.state.item_id {
            return Vec::new();
        }
        let mut state = self.state.anchored_at(now);
        fill(&mut state.title, &info.title);
        fill(&mut state.artist, &info.artist);
        state.duration = state.duration.or(info.duration);
        state.position = state.clamp(state.position);
        self.change_state(state, Cause::Duration, now)
    }

    /// The host's settings (`control`, `ready_gate`, `visibility`,
    /// `chat_enabled`, `clear_chat`): one event, or none when nothing changes.
    fn apply_setting(&mut self, command: Command, now: i64) -> Vec<Event> {
        let kind = match command {
            Command::Control { control } => {
                let mut permissions = self.permissions();
                permissions.set_control(control);
                if permissions == self.permissions() {
                    return Vec::new();
                }
                self.set_permissions(permissions);
                EventKind::Control {
                    control,
                    permissions,
                }
            }
            Command::ReadyGate {
                quorum,
                deadline_ms,
            } => {
                let settings = GateSettings {
                    quorum,
                    deadline_ms,
                };
                if self.ready_gate == Some(settings) {
                    return Vec::new();
                }
                self.ready_gate = Some(settings);
                EventKind::ReadyGate { settings }
            }
            Command::Visibility { visibility } if visibility != self.visibility => {
                self.visibility = visibility;
                EventKind::Visibility { visibility }
            }
            Command::ChatEnabled { chat_enabled } if chat_enabled != self.chat_enabled => {
                self.chat_enabled = chat_enabled;
                EventKind::ChatEnabled { chat_enabled }
            }
            Command::ClearChat {} => {
                // Always an event, even with nothing kept: pages clear what they show.
                self.chat.clear();
                EventKind::ChatCleared {}
            }
            Command::QueueMode { queue_mode } if queue_mode != self.queue_mode => {
                self.queue_mode = queue_mode;
                EventKind::QueueMode { queue_mode }
            }
            Command::Persistent { persistent } if persistent != self.persistent => {
                self.persistent = persistent;
                EventKind::Persistent { persistent }
            }
            Command::Permissions {
                permissions: changes,
            } => {
                // Checked by `validate`: what is left cannot fail.
                let Ok(permissions) = self.permissions().patched(&changes) else {
                    return Vec::new();
                };
                if permissions == self.permissions() {
                    return Vec::new();
                }
                self.set_permissions(permissions);
                EventKind::Permissions { permissions }
            }
            Command::VoteSkip { ratio, min_votes } => {
                let settings = VoteSkip { ratio, min_votes };
                if settings == self.vote_skip {
                    return Vec::new();
                }
                self.vote_skip = settings;
                EventKind::VoteSkip { settings }
            }
            _ => return Vec::new(),
        };
        vec![self.event(now, kind)]
    }

    /// Keeps `permissions`, and `control` derived from them.
    fn set_permissions(&mut self, permissions: Permissions) {
        self.control = permissions.control();
        self.permissions = Some(permissions);
    }

    /// Called when the end-of-video timer fires. Loads the next queued item, or
    /// pauses at the end. Returns nothing if the video is not, in fact, at its end
    /// (the state changed since the timer was armed).
    pub fn on_end(&mut self, inputs: &Inputs) -> Vec<Event> {
        let now = inputs.now;
        let Some(duration) = self.state.duration else {
            return Vec::new();
        };
        if self.state.paused || self.state.position_at(now) < duration - END_TOLERANCE {
            return Vec::new();
        }
        if !self.queue.is_empty() || self.queue_mode == QueueMode::Loop {
            return self.advance(inputs, Cause::Next);
        }
        let state = PlaybackState {
            position: duration,
            paused: true,
            updated_at: now,
            ..self.state.clone()
        };
        self.set_state(state, Cause::Ended, now)
            .into_iter()
            .collect()
    }

    /// Called when the start timer fires: a pending start whose moment has come
    /// happens (a `state` event, cause `start`, anchored at `starts_at`). Nothing
    /// when no start is due (the state changed since the timer was armed).
    pub fn on_start(&mut self, now: i64) -> Vec<Event> {
        match self.state.starts_at {
            Some(at) if at <= now => {
                let state = self.state.started(at);
                self.set_state(state, Cause::Start, now)
                    .into_iter()
                    .collect()
            }
            _ => Vec::new(),
        }
    }

    /// The ready gate `gate` reached its quorum: the start is brought forward to
    /// a lead from now (a `state` event, cause `ready`). Nothing when that gate is
    /// no longer open, or when its deadline start comes sooner anyway.
    pub fn release_gate(&mut self, gate: u64, inputs: &Inputs) -> Vec<Event> {
        if self.state.ready_gate != Some(gate) {
            return Vec::new();
        }
        let now = inputs.now;
        let at = now + inputs.starts.lead_ms;
        if self
            .state
            .starts_at
            .is_some_and(|starts_at| starts_at <= at)
        {
            return Vec::new();
        }
        let state = PlaybackState {
            ready_gate: None,
            ..self.state.clone()
        }
        .start_at(at, now);
        self.set_state(state, Cause::Ready, now)
            .into_iter()
            .collect()
    }

    /// When (server ms) the room next has something to do by itself: a pending
    /// start, else the end of a playing item. Every store's actor arms its one
    /// timer from this.
    pub fn next_due(&self) -> Option<i64> {
        self.state.starts_at.or(self.state.ends_at())
    }

    /// The timer armed from [`Room::next_due`] fired: a pending start whose
    /// moment has come happens, and an item at its end ends. Nothing when the
    /// room changed since the timer was armed.
    pub fn on_due(&mut self, inputs: &Inputs) -> Vec<Event> {
        let mut events = self.on_start(inputs.now);
        events.extend(self.on_end(inputs));
        events
    }

    /// The open ready gate, when `ready` of the taking-part listeners are its
    /// quorum: the gate to release.
    pub fn gate_met(&self, ready: u64, inputs: &Inputs) -> Option<u64> {
        let gate = self.state.ready_gate?;
        self.gate(inputs.starts.gate)
            .met(ready, inputs.gate_listeners)
            .then_some(gate)
    }

    /// When a start asked for at `now` happens: at the given `starts_at`
    /// (checked against [`START_PAST_TOLERANCE_MS`] and [`MAX_START_AHEAD_MS`]),
    /// else a lead from now.
    fn start_moment(&self, starts_at: Option<i64>, inputs: &Inputs) -> Result<i64, CommandError> {
        let now = inputs.now;
        let Some(at) = starts_at else {
            return Ok(now + inputs.starts.lead_ms);
        };
        if at < now - START_PAST_TOLERANCE_MS {
            return Err(CommandError::InvalidValue(format!(
                "`starts_at` is {} ms in the past (server time {now}); at most {START_PAST_TOLERANCE_MS} ms is taken as now",
                now - at
            )));
        }
        if at > now + MAX_START_AHEAD_MS {
            return Err(CommandError::InvalidValue(format!(
                "`starts_at` may be at most {MAX_START_AHEAD_MS} ms ahead of the server time ({now})"
            )));
        }
        Ok(at)
    }

    /// A new item (paused at its start position) set to play: at `at` when
    /// given, else after the ready gate when pages take part in it, else a lead
    /// from now. The gate's id is the version of the event that opens it.
    fn start_item(&self, state: PlaybackState, at: Option<i64>, inputs: &Inputs) -> PlaybackState {
        let now = inputs.now;
        if let Some(at) = at {
            return state.start_at(at, now);
        }
        let gate = self.gate(inputs.starts.gate);
        let lead_ms = inputs.starts.lead_ms;
        if gate.deadline_ms == 0 || inputs.gate_listeners == 0 {
            return state.start_at(now + lead_ms, now);
        }
        let deadline = now + gate.deadline_ms as i64 + lead_ms;
        PlaybackState {
            ready_gate: Some(self.version + 1),
            ..state.start_at(deadline, now)
        }
    }

    /// A chat message from the holder of `token`, if the room's `chat`
    /// permission lets them: see [`Room::chat`].
    pub fn decide_chat(
        &mut self,
        token: Option<&str>,
        name: &str,
        text: &str,
        now: i64,
    ) -> Result<Event, CommandError> {
        self.authorize_for(token, Access::Group(Group::Chat), "chat")?;
        self.chat(name, text, now)
    }

    /// A chat message: validated, trimmed, one event. Refused (`invalid_command`)
    /// while the host has chat turned off.
    pub fn chat(&mut self, name: &str, text: &str, now: i64) -> Result<Event, CommandError> {
        if !self.chat_enabled {
            return Err(CommandError::InvalidCommand(CHAT_OFF.into()));
        }
        let name = check_text("name", name, MAX_CHAT_NAME_CHARS, Empty::Refused)?.to_owned();
        let text = check_text("text", text, MAX_CHAT_TEXT_CHARS, Empty::Refused)?.to_owned();
        let event = self.event(now, EventKind::Chat { name, text });
        self.remember_chat(&event);
        Ok(event)
    }

    /// Keeps a chat event for late joiners, dropping the oldest past `chat_history`.
    fn remember_chat(&mut self, event: &Event) {
        let EventKind::Chat { name, text } = &event.kind else {
            return;
        };
        // A mirror may read a message with the room and then hear its event.
        if self.chat_history == 0 || self.chat.back().is_some_and(|m| m.version >= event.version) {
            return;
        }
        while self.chat.len() >= self.chat_history {
            self.chat.pop_front();
        }
        self.chat.push_back(ChatMessage {
            version: event.version,
            name: name.clone(),
            text: text.clone(),
            server_time: event.server_time,
        });
    }

    /// Sets how many chat messages are kept, and drops any beyond it.
    pub fn keep_chat(&mut self, chat_history: usize) {
        self.chat_history = chat_history;
        while self.chat.len() > chat_history {
            self.chat.pop_front();
        }
    }

    /// Replaces the host token (its hash) with `new_token`'s: the old token stops
    /// working with this version. The event says that the token changed, never what
    /// it is.
    pub fn reset_host_token(&mut self, new_token: &str, now: i64) -> Event {
        self.host_token_hash = hash_token(new_token);
        self.event(now, EventKind::HostToken {})
    }

    /// The room's last event.
    pub fn close(&mut self, reason: CloseReason, now: i64) -> Event {
        self.event(now, EventKind::Closed { reason })
    }

    /// Follows an event another node committed (through a backplane): the room
    /// becomes what the event says. Every event carries the whole part of the room
    /// it changes, so a mirror that absorbs a gapless run of events is the room.
    /// (The queue's id counter is not mirrored: mirrors never apply commands.)
    pub fn absorb(&mut self, event: &Event) {
        self.version = event.version;
        match &event.kind {
            EventKind::State { state, cause } => {
                let new_item = self.loads_item(*cause, state);
                self.state = state.clone();
                self.follow_item(new_item, *cause, event.version);
            }
            EventKind::Queue { change } => change.apply_to(&mut self.queue),
            EventKind::QueueMode { queue_mode } => self.queue_mode = *queue_mode,
            EventKind::Control { permissions, .. } | EventKind::Permissions { permissions } => {
                self.set_permissions(*permissions)
            }
            EventKind::Cohosts { cohosts } => self.absorb_cohosts(cohosts),
            EventKind::ChatDeleted { chat_version } => {
                self.chat.retain(|message| message.version != *chat_version)
            }
            EventKind::ReadyGate { settings } => self.ready_gate = Some(*settings),
            EventKind::Visibility { visibility } => self.visibility = *visibility,
            EventKind::ChatEnabled { chat_enabled } => self.chat_enabled = *chat_enabled,
            EventKind::ChatCleared {} => self.chat.clear(),
            EventKind::Chat { .. } => self.remember_chat(event),
            // The new hash is not on the feed: a mirror never checks tokens itself
            // (its commits read the room from the store, and check there).
            EventKind::HostToken {} | EventKind::Closed { .. } => {}
            EventKind::Persistent { persistent } => self.persistent = *persistent,
            EventKind::VoteSkip { settings } => self.vote_skip = *settings,
        }
    }

    /// Loads the queue's next item (the first, or in shuffle mode one picked
    /// at random) and drops it from the queue: a `state` event (`cause`: `next`,
    /// or `vote_skip`) then a `queue` event (op `remove`). In loop mode the finished item goes
    /// back to the end of the queue under a new id (op `add`), first when the
    /// queue was empty, so a loop of one item plays on. Nothing when the queue
    /// is empty (and nothing was playing, in loop mode).
    fn advance(&mut self, inputs: &Inputs, cause: Cause) -> Vec<Event> {
        let now = inputs.now;
        let mut requeued = self.finished_item();
        let mut events = Vec::new();
        if self.queue.is_empty() {
            let Some(item) = requeued.take() else {
                return Vec::new();
            };
            events.push(self.requeue(item, now));
        }
        let index = match self.queue_mode {
            QueueMode::Shuffle => (inputs.pick % self.queue.len() as u64) as usize,
            QueueMode::Normal | QueueMode::Loop => 0,
        };
        let item = self.queue.remove(index);
        let state = PlaybackState {
            source: Some(item.source),
            duration: item.duration,
            item_id: Some(item.item_id.clone()),
            title: item.title,
            artist: item.artist,
            added_by: item.added_by,
            ..self.state.fresh(now)
        };
        self.state = self.start_item(state, None, inputs);
        let state = self.state.clone();
        let loaded = self.event(now, EventKind::State { cause, state });
        self.follow_item(true, cause, loaded.version);
        events.push(loaded);
        let removed = QueueChange::Remove {
            item_ids: vec![item.item_id],
        };
        events.push(self.event(now, EventKind::Queue { change: removed }));
        if let Some(item) = requeued {
            events.push(self.requeue(item, now));
        }
        events
    }

    /// In loop mode, the loaded item as a new queue item (under a new id, set
    /// when it is queued), when something is loaded.
    fn finished_item(&self) -> Option<QueueItem> {
        if self.queue_mode != QueueMode::Loop {
            return None;
        }
        let state = &self.state;
        Some(QueueItem {
            item_id: String::new(),
            source: state.source.clone()?,
            title: state.title.clone(),
            artist: state.artist.clone(),
            duration: state.duration,
            added_by: state.added_by.clone(),
        })
    }

    /// Appends `item` to the queue under a new id: its `queue` event (op `add`).
    /// Over `max_queue` only by this one item, which the next advance takes.
    fn requeue(&mut self, mut item: QueueItem, now: i64) -> Event {
        item.item_id = self.new_item_id();
        self.queue.push(item.clone());
        let change = QueueChange::Add { items: vec![item] };
        self.event(now, EventKind::Queue { change })
    }

    /// [`Room::set_state`], as the events of a change.
    fn change_state(&mut self, state: PlaybackState, cause: Cause, now: i64) -> Vec<Event> {
        self.set_state(state, cause, now).into_iter().collect()
    }

    /// Moves to `state` unless a client could not tell the difference.
    fn set_state(&mut self, state: PlaybackState, cause: Cause, now: i64) -> Option<Event> {
        if state.same_as(&self.state, now) {
            return None;
        }
        let new_item = self.loads_item(cause, &state);
        self.state = state.clone();
        let event = self.event(now, EventKind::State { cause, state });
        self.follow_item(new_item, cause, event.version);
        Some(event)
    }

    /// Whether a `state` event of `cause` that moves to `state` loads a new
    /// item (a vote skip either loads the next one or pauses this one).
    fn loads_item(&self, cause: Cause, state: &PlaybackState) -> bool {
        match cause {
            Cause::Load | Cause::Next => true,
            Cause::VoteSkip => state.item_id != self.state.item_id,
            _ => false,
        }
    }

    /// Keeps what votes are counted for after a `state` event at `version`:
    /// a new item starts over; a vote skip that kept the item used its one skip.
    fn follow_item(&mut self, new_item: bool, cause: Cause, version: u64) {
        if new_item {
            self.item_since = version;
            self.vote_skipped = None;
        } else if cause == Cause::VoteSkip {
            self.vote_skipped = Some(self.item_since);
        }
    }

    /// The loaded item (its `item_since`), when `skip` votes of `listeners`
    /// live streams are enough to skip it and it was not skipped by votes yet.
    pub fn vote_skip_met(&self, skip: u64, listeners: u64) -> Option<u64> {
        (self.state.source.is_some()
            && self.vote_skipped != Some(self.item_since)
            && self.vote_skip.met(skip, listeners))
        .then_some(self.item_since)
    }

    /// The votes to skip `item` were enough: the queue's next item plays
    /// (state cause `vote_skip`), or with nothing to play next the item pauses
    /// at its end (where playback got to, when its duration is unknown), same
    /// cause. Nothing when `item` is no longer loaded or was skipped already,
    /// so every store, and every node, skips an item once.
    pub fn skip_by_vote(&mut self, item: u64, inputs: &Inputs) -> Vec<Event> {
        if item != self.item_since || self.vote_skipped == Some(item) || self.state.source.is_none()
        {
            return Vec::new();
        }
        let events = self.advance(inputs, Cause::VoteSkip);
        if !events.is_empty() {
            return events;
        }
        let now = inputs.now;
        let mut state = self.state.anchored_at(now);
        state.position = state.duration.unwrap_or(state.position);
        state.paused = true;
        state.starts_at = None;
        state.ready_gate = None;
        self.change_state(state, Cause::VoteSkip, now)
    }

    fn queue_index(&self, item_id: &str) -> Result<usize, CommandError> {
        self.queue
            .iter()
            .position(|item| item.item_id == item_id)
            .ok_or_else(|| {
                CommandError::InvalidValue(format!(
                    "no queue item has the id `{}`",
                    item_id.chars().take(64).collect::<String>()
                ))
            })
    }

    /// Every id-carrying event goes through here: this is the only place the
    /// version grows, so ids are consecutive by construction.
    pub(super) fn event(&mut self, now: i64, kind: EventKind) -> Event {
        self.version += 1;
        Event {
            version: self.version,
            server_time: now,
            kind,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// At `now`, under the default policy.
    fn at(now: i64) -> Inputs {
        Inputs::at(now)
    }

    const T0: i64 = 1_763_800_000_000;
    const VIDEO: &str = "dQw4w9WgXcQ";
    const OTHER: &str = "9bZkp7q19f0";

    fn room() -> Room {
        Room::new("r".into(), "r".into(), Control::Host, None, "secret", 3, T0)
    }

    fn loaded(paused: bool, duration: Option<f64>) -> Room {
        let mut room = room();
        room.apply(
            Command::Load {
                title: None,
                artist: None,
                source: Source::Video(VIDEO.into()),
                position: None,
                paused: Some(paused),
                duration,
                starts_at: None,
            },
            &at(T0),
        )
        .unwrap();
        room
    }

    fn causes(events: &[Event]) -> Vec<String> {
        events
            .iter()
            .map(|e| match &e.kind {
                EventKind::State { cause, .. } => format!("state:{cause:?}"),
                EventKind::Queue { .. } => "queue".into(),
                EventKind::Chat { .. } => "chat".into(),
                other => other.name().into(),
            })
            .collect()
    }

    #[test]
    fn a_mirror_absorbing_every_event_shows_the_same_room() {
        let mut room = room();
        room.keep_chat(5);
        let mut mirror = room.clone();
        let mut events = Vec::new();
        for command in [
            Command::add(Source::Video(OTHER.into()), Some("next".into())),
            Command::Load {
                title: None,
                artist: None,
                source: Source::Video(VIDEO.into()),
                position: Some(3.0),
                paused: Some(false),
                duration: Some(5.0),
                starts_at: None,
            },
            Command::Rate { rate: 2.0 },
            Command::Control {
                control: Control::Open,
            },
            Command::Visibility {
                visibility: Visibility::Public,
            },
            Command::ChatEnabled {
                chat_enabled: false,
            },
        ] {
            events.extend(room.apply(command, &at(T0 + 1_000)).unwrap());
        }
        events.extend(room.on_end(&at(T0 + 10_000)));
        events.extend(
            room.apply(
                Command::ChatEnabled { chat_enabled: true },
                &at(T0 + 10_000),
            )
            .unwrap(),
        );
        events.push(room.chat("ann", "hi", T0 + 10_000).unwrap());
        events.extend(room.apply(Command::ClearChat {}, &at(T0 + 10_000)).unwrap());
        events.push(room.chat("bob", "again", T0 + 10_000).unwrap());
        events.push(room.reset_host_token("new", T0 + 10_000));
        // Through the wire form, as between nodes.
        for event in &events {
            let wire = serde_json::to_string(event).unwrap();
            mirror.absorb(&serde_json::from_str(&wire).unwrap());
        }
        assert_eq!(
            mirror.view(7, T0 + 12_000, GateSettings::default()),
            room.view(7, T0 + 12_000, GateSettings::default())
        );
        assert_eq!(
            mirror.view(7, T0, GateSettings::default()).visibility,
            Visibility::Public
        );
        assert_eq!(mirror.view(7, T0, GateSettings::default()).chat.len(), 1);
    }

    #[test]
    fn rooms_are_unlisted_with_chat_on_until_the_host_says_otherwise() {
        let mut room = room();
        room.keep_chat(10);
        assert_eq!(
            room.view(0, T0, GateSettings::default()).visibility,
            Visibility::Unlisted
        );
        assert!(room.view(0, T0, GateSettings::default()).chat_enabled);
        let public = Command::Visibility {
            visibility: Visibility::Public,
        };
        assert_eq!(
            causes(&room.apply(public.clone(), &at(T0)).unwrap()),
            ["visibility"]
        );
        // The same visibility again changes nothing.
        assert!(room.apply(public, &at(T0)).unwrap().is_empty());
        room.chat("ann", "one", T0).unwrap();
        room.chat("ann", "two", T0).unwrap();
        let cleared = room.apply(Command::ClearChat {}, &at(T0)).unwrap();
        assert_eq!(causes(&cleared), ["chat_cleared"]);
        assert!(room.view(0, T0, GateSettings::default()).chat.is_empty());
        let off = Command::ChatEnabled {
            chat_enabled: false,
        };
        assert_eq!(causes(&room.apply(off, &at(T0)).unwrap()), ["chat_enabled"]);
        let before = room.clone();
        assert_eq!(
            room.chat("ann", "three", T0),
            Err(CommandError::InvalidCommand(CHAT_OFF.into()))
        );
        assert_eq!(room, before);
    }

    #[test]
    fn a_reset_host_token_replaces_the_old_one_at_once() {
        let mut room = room();
        let event = room.reset_host_token("fresh", T0);
        assert_eq!(event.version, 2);
        assert_eq!(causes(&[event]), ["host_token"]);
        assert_eq!(
            room.authorize(Some("secret"), Access::HostOnly),
            Err(CommandError::Forbidden)
        );
        assert_eq!(room.authorize(Some("fresh"), Access::HostOnly), Ok(()));
        assert_eq!(
            room.authorize(None, Access::HostOnly),
            Err(CommandError::Unauthorized(
                "this action is for the host: send `Authorization: Bearer <host_token>`".into()
            ))
        );
    }

    /// A room with a start lead and a gate, `gate_listeners` pages taking part, and
    /// Its inputs at a moment: the lead, the server's gate, the pages taking part.
    fn leading(lead_ms: i64, gate_listeners: u64) -> (Room, impl Fn(i64) -> Inputs) {
        let inputs = move |now| Inputs {
            now,
            pick: 0,
            starts: StartPolicy {
                lead_ms,
                gate: GateSettings::default(),
            },
            gate_listeners,
        };
        (loaded(true, Some(100.0)), inputs)
    }

    fn play_at(starts_at: Option<i64>) -> Command {
        Command::Play {
            position: None,
            starts_at,
        }
    }

    #[test]
    fn play_with_a_lead_is_a_pending_start_that_old_clients_see_paused() {
        let (mut room, at) = leading(300, 0);
        room.apply(Command::Seek { position: 30.0 }, &at(T0))
            .unwrap();
        let events = room.apply(play_at(None), &at(T0 + 1_000)).unwrap();
        assert_eq!(causes(&events), ["state:Play"]);
        let pending = room.state.clone();
        assert!(pending.paused);
        assert_eq!(pending.starts_at, Some(T0 + 1_300));
        // updated_at never lies in the future, and the plain formula gives the
        // position to wait at: paused at 30 until the start.
        assert_eq!(pending.updated_at, T0 + 1_000);
        assert_eq!(pending.position_at(T0 + 1_299), 30.0);
        assert_eq!(pending.ends_at(), None);
        assert!(room.on_end(&at(T0 + 200_000)).is_empty());
        assert!(room.on_start(T0 + 1_299).is_empty());
        let started = room.on_start(T0 + 1_310);
        assert_eq!(causes(&started), ["state:Start"]);
        assert!(!room.state.paused);
        assert_eq!(room.state.starts_at, None);
        assert_eq!(room.state.updated_at, T0 + 1_300);
        assert!((room.state.position_at(T0 + 2_300) - 31.0).abs() < 1e-9);
        // Playing already: play changes nothing (no pause for a lead).
        assert!(room
            .apply(play_at(None), &at(T0 + 3_000))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn starts_at_is_checked_against_the_server_clock() {
        let (mut room, at) = leading(300, 0);
        let now = T0 + 10_000;
        for (starts_at, accepted) in [
            (now - START_PAST_TOLERANCE_MS - 1, false),
            (now + MAX_START_AHEAD_MS + 1, false),
            (now + MAX_START_AHEAD_MS, true),
        ] {
            let before = room.clone();
            let result = room.clone().apply(play_at(Some(starts_at)), &at(now));
            assert_eq!(result.is_ok(), accepted, "{starts_at}");
            assert_eq!(room, before);
        }
        // A moment just past is taken as the start: playing, anchored there.
        room.apply(play_at(Some(now - 500)), &at(now)).unwrap();
        assert!(!room.state.paused);
        assert_eq!(room.state.updated_at, now - 500);
        assert!((room.state.position_at(now) - 0.5).abs() < 1e-9);
        let paused_load = Command::Load {
            title: None,
            artist: None,
            source: Source::Video(OTHER.into()),
            position: None,
            paused: Some(true),
            duration: None,
            starts_at: Some(now + 1_000),
        };
        assert!(matches!(
            room.apply(paused_load, &at(now)),
            Err(CommandError::InvalidValue(_))
        ));
    }

    #[test]
    fn pause_calls_a_pending_start_off() {
        let (mut room, at) = leading(300, 0);
        room.apply(play_at(Some(T0 + 5_000)), &at(T0)).unwrap();
        let events = room
            .apply(Command::Pause { position: None }, &at(T0 + 100))
            .unwrap();
        assert_eq!(causes(&events), ["state:Pause"]);
        assert_eq!(room.state.starts_at, None);
        assert!(room.on_start(T0 + 6_000).is_empty());
    }

    #[test]
    fn a_load_with_pages_taking_part_waits_on_the_gate_until_its_deadline() {
        let (mut room, at) = leading(300, 4);
        let load = Command::Load {
            title: None,
            artist: None,
            source: Source::Video(OTHER.into()),
            position: None,
            paused: None,
            duration: None,
            starts_at: None,
        };
        let events = room.apply(load.clone(), &at(T0)).unwrap();
        let gate = events[0].version;
        assert_eq!(room.state.ready_gate, Some(gate));
        assert_eq!(room.state.starts_at, Some(T0 + 3_000 + 300));
        assert!(room.state.paused);
        // Another gate's quorum changes nothing; this one's brings the start forward.
        assert!(room.release_gate(gate + 1, &at(T0 + 500)).is_empty());
        let ready = room.release_gate(gate, &at(T0 + 500));
        assert_eq!(causes(&ready), ["state:Ready"]);
        assert_eq!(room.state.starts_at, Some(T0 + 800));
        assert_eq!(room.state.ready_gate, None);
        assert!(room.release_gate(gate, &at(T0 + 600)).is_empty());
        // Nobody taking part: nobody to wait for.
        let (mut alone, alone_at) = leading(300, 0);
        alone.apply(load.clone(), &alone_at(T0)).unwrap();
        assert_eq!(alone.state.ready_gate, None);
        assert_eq!(alone.state.starts_at, Some(T0 + 300));
        // The host may start at once: play brings the start to a lead from now.
        room.apply(load, &at(T0 + 1_000)).unwrap();
        room.apply(play_at(None), &at(T0 + 1_100)).unwrap();
        assert_eq!(room.state.starts_at, Some(T0 + 1_400));
        assert_eq!(room.state.ready_gate, None);
    }

    #[test]
    fn next_and_the_end_timer_go_through_the_gate_and_the_host_sets_it() {
        let (mut room, at) = leading(300, 2);
        room.apply(Command::add(Source::Video(OTHER.into()), None), &at(T0))
            .unwrap();
        let settings = Command::ReadyGate {
            quorum: 50,
            deadline_ms: 1_000,
        };
        assert_eq!(
            causes(&room.apply(settings.clone(), &at(T0)).unwrap()),
            ["ready_gate"]
        );
        assert!(room.apply(settings, &at(T0)).unwrap().is_empty());
        assert_eq!(
            room.view(0, T0, GateSettings::default())
                .ready_gate
                .deadline_ms,
            1_000
        );
        room.apply(play_at(Some(T0)), &at(T0)).unwrap();
        let events = room.on_end(&at(T0 + 100_000));
        assert_eq!(causes(&events), ["state:Next", "queue"]);
        assert_eq!(room.state.ready_gate, Some(events[0].version));
        assert_eq!(room.state.starts_at, Some(T0 + 100_000 + 1_000 + 300));
        assert!(room.gate(GateSettings::default()).met(1, 2));
    }

    #[test]
    fn a_new_room_is_at_version_1_paused_with_no_video() {
        let room = room();
        assert_eq!(room.version, 1);
        assert_eq!(room.state, PlaybackState::empty(T0));
        assert_ne!(room.host_token_hash, [0; 32]);
    }

    #[test]
    fn position_extrapolates_at_every_rate() {
        for rate in [0.25, 0.5, 1.0, 1.5, 2.0] {
            let state = PlaybackState {
                item_id: None,
                title: None,
                artist: None,
                added_by: None,
                source: Some(Source::Video(VIDEO.into())),
                position: 10.0,
                paused: false,
                rate,
                duration: None,
                updated_at: T0,
                starts_at: None,
                ready_gate: None,
            };
            assert!((state.position_at(T0 + 4_000) - (10.0 + 4.0 * rate)).abs() < 1e-9);
        }
    }

    #[test]
    fn position_is_clamped_to_zero_and_duration() {
        let mut state = PlaybackState {
            item_id: None,
            title: None,
            artist: None,
            added_by: None,
            source: Some(Source::Video(VIDEO.into())),
            position: 200.0,
            paused: false,
            rate: 2.0,
            duration: Some(212.0),
            updated_at: T0,
            starts_at: None,
            ready_gate: None,
        };
        assert_eq!(state.position_at(T0 + 60_000), 212.0);
        // A client whose clock runs behind asks about the past: never below 0.
        state.position = 0.0;
        assert_eq!(state.position_at(T0 - 5_000), 0.0);
    }

    #[test]
    fn paused_position_does_not_move() {
        let room = loaded(true, None);
        assert_eq!(room.state.position_at(T0 + 100_000), 0.0);
    }

    #[test]
    fn play_resumes_from_the_paused_position() {
        let mut room = loaded(true, None);
        room.apply(Command::Seek { position: 30.0 }, &at(T0))
            .unwrap();
        let events = room
            .apply(
                Command::Play {
                    position: None,
                    starts_at: None,
                },
                &at(T0 + 5_000),
            )
            .unwrap();
        assert_eq!(causes(&events), ["state:Play"]);
        assert!(!room.state.paused);
        assert_eq!(room.state.position, 30.0);
        assert_eq!(room.state.updated_at, T0 + 5_000);
    }

    #[test]
    fn play_with_a_position_starts_there() {
        let mut room = loaded(true, None);
        room.apply(
            Command::Play {
                position: Some(12.5),
                starts_at: None,
            },
            &at(T0 + 1),
        )
        .unwrap();
        assert_eq!(room.state.position, 12.5);
    }

    #[test]
    fn play_on_an_ended_video_starts_it_again() {
        let mut room = loaded(true, Some(100.0));
        room.apply(Command::Seek { position: 100.0 }, &at(T0))
            .unwrap();
        room.apply(
            Command::Play {
                position: None,
                starts_at: None,
            },
            &at(T0 + 1),
        )
        .unwrap();
        assert_eq!(room.state.position, 0.0);
    }

    #[test]
    fn pause_freezes_the_extrapolated_position() {
        let mut room = loaded(false, None);
        let events = room
            .apply(Command::Pause { position: None }, &at(T0 + 2_500))
            .unwrap();
        assert_eq!(causes(&events), ["state:Pause"]);
        assert!(room.state.paused);
        assert!((room.state.position - 2.5).abs() < 1e-9);
    }

    #[test]
    fn pause_trusts_the_hosts_position() {
        let mut room = loaded(false, None);
        room.apply(
            Command::Pause {
                position: Some(2.4),
            },
            &at(T0 + 2_500),
        )
        .unwrap();
        assert_eq!(room.state.position, 2.4);
    }

    #[test]
    fn seek_keeps_playing_or_paused() {
        let mut playing = loaded(false, None);
        playing
            .apply(Command::Seek { position: 50.0 }, &at(T0 + 1_000))
            .unwrap();
        assert!(!playing.state.paused);
        assert_eq!(playing.state.position, 50.0);
        let mut paused = loaded(true, None);
        paused
            .apply(Command::Seek { position: 50.0 }, &at(T0 + 1_000))
            .unwrap();
        assert!(paused.state.paused);
    }

    #[test]
    fn seek_past_the_end_lands_on_the_end() {
        let mut room = loaded(true, Some(100.0));
        room.apply(Command::Seek { position: 500.0 }, &at(T0))
            .unwrap();
        assert_eq!(room.state.position, 100.0);
    }

    #[test]
    fn load_defaults_to_playing_from_zero_and_keeps_the_rate() {
        let mut room = loaded(true, None);
        room.apply(Command::Rate { rate: 1.5 }, &at(T0)).unwrap();
        room.apply(Command::Seek { position: 40.0 }, &at(T0))
            .unwrap();
        let events = room
            .apply(
                Command::Load {
                    title: None,
                    artist: None,
                    source: Source::Video(OTHER.into()),
                    position: None,
                    paused: None,
                    duration: Some(90.0),
                    starts_at: None,
                },
                &at(T0 + 10),
            )
            .unwrap();
        assert_eq!(causes(&events), ["state:Load"]);
        assert_eq!(
            room.state,
            PlaybackState {
                item_id: None,
                title: None,
                artist: None,
                added_by: None,
                source: Some(Source::Video(OTHER.into())),
                position: 0.0,
                paused: false,
                rate: 1.5,
                duration: Some(90.0),
                updated_at: T0 + 10,
                starts_at: None,
                ready_gate: None,
            }
        );
    }

    #[test]
    fn rate_change_reanchors_so_the_position_is_continuous() {
        let mut room = loaded(false, None);
        room.apply(Command::Rate { rate: 2.0 }, &at(T0 + 10_000))
            .unwrap();
        assert!((room.state.position - 10.0).abs() < 1e-9);
        assert!((room.state.position_at(T0 + 15_000) - 20.0).abs() < 1e-9);
    }

    #[test]
    fn duration_clamps_the_position() {
        let mut room = loaded(true, None);
        room.apply(Command::Seek { position: 300.0 }, &at(T0))
            .unwrap();
        room.apply(Command::Duration { duration: 212.0 }, &at(T0))
            .unwrap();
        assert_eq!(room.state.duration, Some(212.0));
        assert_eq!(room.state.position, 212.0);
    }

    #[test]
    fn invalid_commands_change_nothing() {
        let mut room = loaded(false, None);
        let before = room.clone();
        for command in [
            Command::Seek { position: -1.0 },
            Command::Seek { position: f64::NAN },
            Command::Rate { rate: 3.0 },
            Command::Rate {
                rate: f64::INFINITY,
            },
            Command::Duration { duration: 0.0 },
            Command::Load {
                title: None,
                artist: None,
                source: Source::Video("bad".into()),
                position: None,
                paused: None,
                duration: None,
                starts_at: None,
            },
            Command::QueueRemove {
                item_id: "nope".into(),
            },
            Command::QueueMove {
                item_id: "nope".into(),
                index: 0,
            },
        ] {
            assert!(
                room.apply(command.clone(), &at(T0 + 5)).is_err(),
                "{command:?}"
            );
            assert_eq!(room, before, "{command:?}");
        }
    }

    #[test]
    fn commands_that_change_nothing_emit_nothing_and_keep_the_version() {
        let mut room = loaded(true, None);
        room.apply(Command::Seek { position: 7.0 }, &at(T0))
            .unwrap();
        let version = room.version;
        let before = room.clone();
        for command in [
            Command::Pause { position: None },
            Command::Pause {
                position: Some(7.0),
            },
            Command::Seek { position: 7.0 },
            Command::Rate { rate: 1.0 },
            Command::Next {},
            Command::Control {
                control: Control::Host,
            },
        ] {
            assert_eq!(
                room.apply(command.clone(), &at(T0 + 3_000)),
                Ok(vec![]),
                "{command:?}"
            );
            assert_eq!(room.version, version);
        }
        assert_eq!(room, before);
        // Playing: play again is nothing, even later, as the position just moved on.
        let mut playing = loaded(false, None);
        let before = playing.clone();
        assert_eq!(
            playing.apply(
                Command::Play {
                    position: None,
                    starts_at: None
                },
                &at(T0 + 9_000)
            ),
            Ok(vec![])
        );
        assert_eq!(playing, before);
    }

    #[test]
    fn versions_grow_by_one_per_event() {
        let mut room = room();
        let mut expected = room.version;
        let commands = [
            Command::Load {
                title: None,
                artist: None,
                source: Source::Video(VIDEO.into()),
                position: None,
                paused: None,
                duration: None,
                starts_at: None,
            },
            Command::Pause { position: None },
            Command::add(Source::Video(OTHER.into()), None),
            Command::Next {},
        ];
        for (i, command) in commands.into_iter().enumerate() {
            let events = room.apply(command, &at(T0 + 1_000 * i as i64)).unwrap();
            for event in &events {
                expected += 1;
                assert_eq!(event.version, expected);
            }
            assert_eq!(room.version, expected);
        }
        // next = state + queue: two versions.
        assert_eq!(room.version, 6);
    }

    #[test]
    fn host_rooms_need_the_token_and_open_rooms_do_not() {
        let mut room = room();
        assert_eq!(
            room.authorize(None, Access::Group(Group::Playback)),
            Err(CommandError::Unauthorized(
                "playback is for the host: send `Authorization: Bearer <host_token>`".into()
            ))
        );
        assert_eq!(
            room.authorize(Some("wrong"), Access::Group(Group::Playback)),
            Err(CommandError::Forbidden)
        );
        assert_eq!(
            room.authorize(Some("secret"), Access::Group(Group::Playback)),
            Ok(())
        );
        room.apply(
            Command::Control {
                control: Control::Open,
            },
            &at(T0),
        )
        .unwrap();
        assert_eq!(room.authorize(None, Access::Group(Group::Playback)), Ok(()));
        assert_eq!(
            room.authorize(None, Access::HostOnly),
            Err(CommandError::Unauthorized(
                "this action is for the host: send `Authorization: Bearer <host_token>`".into()
            ))
        );
        assert_eq!(room.authorize(Some("secret"), Access::HostOnly), Ok(()));
    }

    #[test]
    fn expected_version_must_match() {
        let room = room();
        assert_eq!(room.check_version(None), Ok(()));
        assert_eq!(room.check_version(Some(1)), Ok(()));
        assert_eq!(
            room.check_version(Some(2)),
            Err(CommandError::VersionConflict {
                expected: 2,
                actual: 1
            })
        );
    }

    #[test]
    fn queue_items_get_unique_ids_and_move_in_order() {
        let mut room = room();
        for video in [VIDEO, OTHER, "aaaaaaaaaaa"] {
            room.apply(
                Command::add(Source::Video(video.into()), Some(" t ".into())),
                &at(T0),
            )
            .unwrap();
        }
        let ids: Vec<_> = room.queue.iter().map(|i| i.item_id.clone()).collect();
        assert_eq!(ids, ["q1", "q2", "q3"]);
        assert_eq!(room.queue[0].title.as_deref(), Some("t"));
        room.apply(
            Command::QueueMove {
                item_id: "q3".into(),
                index: 0,
            },
            &at(T0),
        )
        .unwrap();
        room.apply(
            Command::QueueMove {
                item_id: "q1".into(),
                index: 99,
            },
            &at(T0),
        )
        .unwrap();
        let ids: Vec<_> = room.queue.iter().map(|i| i.item_id.as_str()).collect();
        assert_eq!(ids, ["q3", "q2", "q1"]);
        room.apply(
            Command::QueueRemove {
                item_id: "q2".into(),
            },
            &at(T0),
        )
        .unwrap();
        // Ids are never reused, even after a removal.
        room.apply(Command::add(Source::Video(VIDEO.into()), None), &at(T0))
            .unwrap();
        let ids: Vec<_> = room.queue.iter().map(|i| i.item_id.as_str()).collect();
        assert_eq!(ids, ["q3", "q1", "q4"]);
    }

    #[test]
    fn a_full_queue_refuses_more() {
        let mut room = room(); // max_queue 3
        for _ in 0..3 {
            room.apply(Command::add(Source::Video(VIDEO.into()), None), &at(T0))
                .unwrap();
        }
        let before = room.clone();
        assert!(matches!(
            room.apply(Command::add(Source::Video(VIDEO.into()), None), &at(T0)),
            Err(CommandError::InvalidValue(_))
        ));
        assert_eq!(room, before);
    }

    #[test]
    fn next_loads_the_first_item_and_drops_it() {
        let mut room = loaded(true, Some(100.0));
        room.apply(Command::add(Source::Video(OTHER.into()), None), &at(T0))
            .unwrap();
        let events = room.apply(Command::Next {}, &at(T0 + 50)).unwrap();
        assert_eq!(causes(&events), ["state:Next", "queue"]);
        assert_eq!(
            room.state.source.as_ref().and_then(Source::video_id),
            Some(OTHER)
        );
        assert!(!room.state.paused);
        assert_eq!(room.state.duration, None);
        assert!(room.queue.is_empty());
    }

    #[test]
    fn the_end_timer_pauses_at_the_end_with_an_empty_queue() {
        let mut room = loaded(false, Some(10.0));
        room.apply(Command::Rate { rate: 2.0 }, &at(T0)).unwrap();
        assert_eq!(room.state.ends_at(), Some(T0 + 5_000));
        assert_eq!(room.on_end(&at(T0 + 4_000)), vec![]);
        let events = room.on_end(&at(T0 + 5_000));
        assert_eq!(causes(&events), ["state:Ended"]);
        assert!(room.state.paused);
        assert_eq!(room.state.position, 10.0);
        // Once ended, the timer has nothing more to do.
        assert_eq!(room.state.ends_at(), None);
        assert_eq!(room.on_end(&at(T0 + 6_000)), vec![]);
    }

    #[test]
    fn the_end_timer_advances_to_the_queue() {
        let mut room = loaded(false, Some(10.0));
        room.apply(Command::add(Source::Video(OTHER.into()), None), &at(T0))
            .unwrap();
        let events = room.on_end(&at(T0 + 10_000));
        assert_eq!(causes(&events), ["state:Next", "queue"]);
        assert_eq!(
            room.state.source.as_ref().and_then(Source::video_id),
            Some(OTHER)
        );
    }

    #[test]
    fn media_items_play_queue_and_advance_like_videos() {
        let mut room = room();
        let media = Source::Media("/media/one.ogg".into());
        room.apply(
            Command::Load {
                title: None,
                artist: None,
                source: media.clone(),
                position: None,
                paused: None,
                duration: Some(10.0),
                starts_at: None,
            },
            &at(T0),
        )
        .unwrap();
        for source in [
            Source::Media("https://example.com/two.mp3".into()),
            Source::Video(VIDEO.into()),
        ] {
            room.apply(Command::add(source, None), &at(T0)).unwrap();
        }
        assert_eq!(room.state.source, Some(media));
        // Media to media at the end, then media to YouTube on `next`.
        assert_eq!(
            causes(&room.on_end(&at(T0 + 10_000))),
            ["state:Next", "queue"]
        );
        assert_eq!(
            room.state.source,
            Some(Source::Media("https://example.com/two.mp3".into()))
        );
        assert_eq!(
            causes(&room.apply(Command::Next {}, &at(T0 + 11_000)).unwrap()),
            ["state:Next", "queue"]
        );
        assert_eq!(room.state.source, Some(Source::Video(VIDEO.into())));
        assert!(room.queue.is_empty());
    }

    #[test]
    fn a_bad_media_url_changes_nothing() {
        let mut room = loaded(false, None);
        let before = room.clone();
        for url in ["javascript:alert(1)", "/media/../x", "//example.com/a.mp3"] {
            let load = Command::Load {
                title: None,
                artist: None,
                source: Source::Media(url.into()),
                position: None,
                paused: None,
                duration: None,
                starts_at: None,
            };
            let add = Command::add(Source::Media(url.into()), None);
            assert!(matches!(
                room.apply(load, &at(T0 + 1)),
                Err(CommandError::InvalidValue(_))
            ));
            assert!(matches!(
                room.apply(add, &at(T0 + 1)),
                Err(CommandError::InvalidValue(_))
            ));
            assert_eq!(room, before);
        }
    }

    #[test]
    fn rooms_stored_before_media_urls_still_load() {
        let mut room = loaded(false, None);
        room.apply(Command::add(Source::Video(OTHER.into()), None), &at(T0))
            .unwrap();
        let mut stored = serde_json::to_value(&room).unwrap();
        assert_eq!(stored["state"]["media_url"], serde_json::Value::Null);
        assert_eq!(stored["queue"][0]["media_url"], serde_json::Value::Null);
        stored["state"].as_object_mut().unwrap().remove("media_url");
        stored["queue"][0]
            .as_object_mut()
            .unwrap()
            .remove("media_url");
        let restored: Room = serde_json::from_value(stored).unwrap();
        assert_eq!(restored, room);
        // An empty room has both null.
        let empty = serde_json::to_value(PlaybackState::empty(T0)).unwrap();
        assert_eq!(empty["video_id"], serde_json::Value::Null);
        assert_eq!(empty["media_url"], serde_json::Value::Null);
    }

    #[test]
    fn a_paused_video_never_ends() {
        let mut room = loaded(true, Some(10.0));
        assert_eq!(room.state.ends_at(), None);
        assert_eq!(room.on_end(&at(T0 + 60_000)), vec![]);
    }

    #[test]
    fn chat_history_keeps_the_last_n_and_a_mirror_keeps_the_same() {
        let mut room = room();
        room.keep_chat(2);
        let mut mirror = room.clone();
        for text in ["one", "two", "three"] {
            let event = room.chat("Ann", text, T0).unwrap();
            mirror.absorb(&event);
            // Hearing an event twice keeps it once.
            mirror.absorb(&event);
        }
        let texts: Vec<&str> = room.chat.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts, ["two", "three"]);
        assert_eq!(mirror, room);
        assert_eq!(room.view(0, T0, GateSettings::default()).chat[0].version, 3);
        room.keep_chat(0);
        assert!(room.chat.is_empty());
        room.chat("Ann", "four", T0).unwrap();
        assert!(room.chat.is_empty());
    }

    #[test]
    fn chat_is_trimmed_and_validated() {
        let mut room = room();
        let event = room.chat(" Ann ", " hi ", T0).unwrap();
        assert_eq!(
            event.kind,
            EventKind::Chat {
                name: "Ann".into(),
                text: "hi".into()
            }
        );
        assert_eq!(event.version, 2);
        let before = room.clone();
        assert!(room.chat("", "hi", T0).is_err());
        assert!(room.chat("Ann", "", T0).is_err());
        assert!(room.chat("Ann", &"x".repeat(501), T0).is_err());
        assert!(room.chat(&"x".repeat(65), "hi", T0).is_err());
        assert!(room.chat("Ann", "a\u{0}b", T0).is_err());
        assert_eq!(room, before);
    }
}

#[cfg(test)]
mod properties {
    //! Property tests: the rules that must hold for every sequence of commands.
    use super::*;
    use proptest::prelude::*;

    const T0: i64 = 1_763_800_000_000;

    /// Either kind of item, and now and then one that is refused.
    fn video() -> impl Strategy<Value = Source> {
        prop_oneof![
            Just(Source::Video("dQw4w9WgXcQ".to_owned())),
            Just(Source::Video("9bZkp7q19f0".to_owned())),
            Just(Source::Media("/media/a.ogg".to_owned())),
            Just(Source::Media("https://example.com/b.mp3".to_owned())),
            Just(Source::Media("javascript:alert(1)".to_owned())),
        ]
    }

    /// Any command, including out-of-range values and unknown item ids.
    fn command() -> impl Strategy<Value = Command> {
        let position = prop_oneof![0.0..400.0f64, Just(-1.0), Just(f64::NAN)];
        prop_oneof![
            proptest::option::of(position.clone()).prop_map(|position| Command::Play {
                position,
                starts_at: None
            }),
            proptest::option::of(position.clone()).prop_map(|position| Command::Pause { position }),
            position
                .clone()
                .prop_map(|position| Command::Seek { position }),
            (
                video(),
                proptest::option::of(position),
                proptest::option::of(any::<bool>()),
                proptest::option::of(prop_oneof![1.0..300.0f64, Just(0.0)]),
            )
                .prop_map(|(source, position, paused, duration)| Command::Load {
                    title: None,
                    artist: None,
                    source,
                    position,
                    paused,
                    duration,
                    starts_at: None,
                }),
            prop_oneof![0.1..2.5f64, Just(0.25), Just(2.0)].prop_map(|rate| Command::Rate { rate }),
            (1.0..300.0f64).prop_map(|duration| Command::Duration { duration }),
            video().prop_map(|source| Command::add(source, None)),
            (1..6u64).prop_map(|n| Command::QueueRemove {
                item_id: format!("q{n}")
            }),
            ((1..6u64), (0..5u64)).prop_map(|(n, index)| Command::QueueMove {
                item_id: format!("q{n}"),
                index
            }),
            Just(Command::Next {}),
            prop_oneof![Just(Control::Host), Just(Control::Open)]
                .prop_map(|control| Command::Control { control }),
        ]
    }

    fn new_room() -> Room {
        Room::new("r".into(), "r".into(), Control::Host, None, "t", 4, T0)
    }

    proptest! {
        #[test]
        fn versions_are_consecutive_and_errors_change_nothing(
            steps in proptest::collection::vec((command(), 0..5_000i64), 1..60)
        ) {
            let mut room = new_room();
            let mut now = T0;
            for (command, wait) in steps {
                now += wait;
                let before = room.clone();
                match room.apply(command, &Inputs::at(now)) {
                    Ok(events) => {
                        for (i, event) in events.iter().enumerate() {
                            prop_assert_eq!(event.version, before.version + 1 + i as u64);
                        }
                        prop_assert_eq!(room.version, before.version + events.len() as u64);
                        if events.is_empty() {
                            prop_assert_eq!(&room, &before);
                        }
                    }
                    Err(_) => prop_assert_eq!(&room, &before),
                }
                for event in room.on_end(&Inputs::at(now)) {
                    prop_assert!(event.version <= room.version);
                }
            }
        }

        #[test]
        fn the_position_always_stays_within_the_video(
            steps in proptest::collection::vec((command(), 0..20_000i64), 1..60),
            probe in 0..600_000i64,
        ) {
            let mut room = new_room();
            let mut now = T0;
            for (command, wait) in steps {
                now += wait;
                let _ = room.apply(command, &Inputs::at(now));
                let position = room.state.position_at(now + probe);
                prop_assert!(position >= 0.0 && position.is_finite());
                if let Some(duration) = room.state.duration {
                    prop_assert!(position <= duration);
                }
            }
        }

        #[test]
        fn pause_play_and_rate_changes_keep_the_position_continuous(
            steps in proptest::collection::vec((command(), 0..20_000i64), 0..30),
            change in prop_oneof![
                Just(Command::Pause { position: None }),
                Just(Command::Play { position: None, starts_at: None }),
                (0.25..=2.0f64).prop_map(|rate| Command::Rate { rate }),
            ],
            wait in 0..10_000i64,
        ) {
            let mut room = new_room();
            let mut now = T0;
            for (command, step) in steps {
                now += step;
                let _ = room.apply(command, &Inputs::at(now));
            }
            now += wait;
            let before = room.state.position_at(now);
            let ended = room.state.duration.is_some_and(|d| before >= d);
            let _ = room.apply(change, &Inputs::at(now));
            // Play on an ended video restarts it: the one intended jump.
            if !ended {
                prop_assert!((room.state.position_at(now) - before).abs() < 1e-6);
            }
        }
    }
}
