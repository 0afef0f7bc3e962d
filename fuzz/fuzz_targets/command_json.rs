//! Command bodies as `POST /api/rooms/{room_id}/commands` receives them: bytes →
//! JSON → `Command::decode` → `Room::apply`, the pure state machine.
//!
//! A JSON object is one command, applied to a new room and to a busy one (a video
//! playing, two items queued). A JSON array is a run of steps applied in turn to one
//! room: each element is a command body, or `{"type": "chat", "name", "text"}` for
//! a chat message, and may carry `"wait_ms"` (ignored by decoding) to move the
//! clock before it. The end-of-video timer fires between steps as the actor's
//! would. After every step the room's rules are checked, and a mirror that absorbs
//! the events through their wire form must show the same room.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};
use syncroom::room::command::{CommandRequest, COMMAND_TYPES, MAX_RATE, MAX_TITLE_CHARS, MIN_RATE};
use syncroom::room::state::MAX_POSITION;
use syncroom::room::{
    Cause, Command, CommandError, Control, Event, EventKind, GateSettings, Inputs, Room, Source,
};

const T0: i64 = 1_763_800_000_000;
const TOKEN: &str = "secret";
const MAX_QUEUE: usize = 4;
const MAX_STEPS: usize = 64;
/// Longest wait between two steps: a year.
const MAX_WAIT_MS: u64 = 365 * 24 * 3600 * 1000;
const DEFAULT_WAIT_MS: u64 = 1_000;
const VIDEO: &str = "dQw4w9WgXcQ";
const OTHER: &str = "9bZkp7q19f0";

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    if let Value::Array(steps) = &body {
        let mut world = World::new(new_room(), T0);
        for step in steps.iter().take(MAX_STEPS) {
            world.step(step);
        }
        // Let every playing video run to its end.
        world.fire_end_timer(world.now + MAX_WAIT_MS as i64);
    }
    if let Ok(request) = decode(&body) {
        for room in [new_room(), busy_room()] {
            let mut world = World::new(room, T0 + 5_000);
            world.command(request.clone());
            world.fire_end_timer(world.now + MAX_WAIT_MS as i64);
        }
    }
});

fn new_room() -> Room {
    Room::new(
        "r".into(),
        "r".into(),
        Control::Host,
        None,
        TOKEN,
        MAX_QUEUE,
        T0,
    )
}

/// A video playing from 10 s of 212 s, and two items queued (`q1`, `q2`).
fn busy_room() -> Room {
    let mut room = new_room();
    for command in [
        Command::Load {
            source: Source::Video(VIDEO.into()),
            position: Some(10.0),
            paused: Some(false),
            duration: Some(212.0),
            starts_at: None,
        },
        Command::QueueAdd {
            source: Source::Media("/media/next.ogg".into()),
            title: Some("next".into()),
        },
        Command::QueueAdd {
            source: Source::Video(VIDEO.into()),
            title: None,
        },
    ] {
        room.apply(command, &Inputs::at(T0))
            .expect("the busy room's commands are valid");
    }
    room
}

/// `Command::decode` with the rules every answer follows.
fn decode(body: &Value) -> Result<CommandRequest, CommandError> {
    let result = Command::decode(body.clone());
    match &result {
        Ok(request) => {
            let fields = body.as_object().expect("only an object decodes");
            assert_eq!(
                fields.get("type").and_then(Value::as_str),
                Some(request.command.type_name())
            );
            assert_eq!(
                request.expected_version,
                fields.get("expected_version").and_then(Value::as_u64)
            );
            assert_eq!(request.command.validate(), Ok(()));
            // The command written back as JSON decodes to itself.
            let again = Command::decode(encode(&request.command)).expect("re-encoded command");
            assert_eq!(again.command, request.command);
            assert_eq!(again.expected_version, None);
        }
        Err(error) => {
            assert!(
                matches!(
                    error,
                    CommandError::InvalidJson(_)
                        | CommandError::InvalidCommand(_)
                        | CommandError::InvalidValue(_)
                ),
                "decoding answered {error:?}"
            );
            match body.as_object() {
                None => assert!(matches!(error, CommandError::InvalidJson(_))),
                Some(fields) => {
                    let expected_version_ok = match fields.get("expected_version") {
                        None | Some(Value::Null) => true,
                        Some(value) => value.as_u64().is_some(),
                    };
                    let known_type = fields
                        .get("type")
                        .and_then(Value::as_str)
                        .is_some_and(|name| COMMAND_TYPES.contains(&name));
                    if expected_version_ok && !known_type {
                        assert!(matches!(error, CommandError::InvalidCommand(_)));
                    }
                }
            }
        }
    }
    result
}

/// A command as a client would send it.
fn encode(command: &Command) -> Value {
    let mut body = match command {
        Command::Play {
            position,
            starts_at,
        } => json!({ "position": position, "starts_at": starts_at }),
        Command::Pause { position } => json!({ "position": position }),
        Command::Seek { position } => json!({ "position": position }),
        Command::Load {
            source,
            position,
            paused,
            duration,
            starts_at,
        } => json!({
            "video_id": source.video_id(),
            "media_url": source.media_url(),
            "position": position,
            "paused": paused,
            "duration": duration,
            "starts_at": starts_at,
        }),
        Command::Rate { rate } => json!({ "rate": rate }),
        Command::Duration { duration } => json!({ "duration": duration }),
        Command::QueueAdd { source, title } => json!({
            "video_id": source.video_id(),
            "media_url": source.media_url(),
            "title": title,
        }),
        Command::QueueRemove { item_id } => json!({ "item_id": item_id }),
        Command::QueueMove { item_id, index } => json!({ "item_id": item_id, "index": index }),
        Command::Next {} => json!({}),
        Command::Control { control } => json!({ "control": control }),
        Command::ReadyGate {
            quorum,
            deadline_ms,
        } => json!({ "quorum": quorum, "deadline_ms": deadline_ms }),
    };
    body["type"] = Value::from(command.type_name());
    body
}

/// One room as its actor holds it, and a mirror that follows its events as
/// another node (or a restart from disk) would.
struct World {
    room: Room,
    mirror: Room,
    now: i64,
}

impl World {
    fn new(room: Room, now: i64) -> Self {
        let mirror = room.clone();
        let world = Self { room, mirror, now };
        world.check_room();
        world
    }

    fn step(&mut self, step: &Value) {
        let wait = step
            .get("wait_ms")
            .and_then(Value::as_u64)
            .unwrap_or(DEFAULT_WAIT_MS)
            .min(MAX_WAIT_MS);
        let now = self.now + wait as i64;
        self.fire_end_timer(now);
        self.now = now;
        if step.get("type").and_then(Value::as_str) == Some("chat") {
            self.chat(step);
        } else if let Ok(request) = decode(step) {
            self.command(request);
        }
    }

    /// What the actor does with a decoded command (the host sends it, so the token
    /// check passes): `decide`, the token and version guards, then `apply`.
    fn command(&mut self, request: CommandRequest) {
        let before = self.room.clone();
        let command = request.command.clone();
        let result = self.room.decide(
            Some(TOKEN),
            request.expected_version,
            request.command,
            &Inputs::at(self.now),
        );
        match result {
            Ok(events) => {
                self.check_events(&before, &events);
                check_causes(&command, &events);
            }
            Err(error) => {
                // `play` with nothing loaded is refused as a command out of place.
                let nothing_to_play = matches!(command, Command::Play { .. })
                    && before.state.source.is_none()
                    && matches!(error, CommandError::InvalidCommand(_));
                assert!(
                    nothing_to_play
                        || matches!(
                            error,
                            CommandError::InvalidValue(_) | CommandError::VersionConflict { .. }
                        ),
                    "{command:?} answered {error:?}"
                );
                assert_eq!(self.room, before, "{command:?} failed but changed the room");
            }
        }
        self.check_room();
    }

    fn chat(&mut self, step: &Value) {
        let text_of = |field| step.get(field).and_then(Value::as_str).unwrap_or_default();
        let before = self.room.clone();
        match self.room.chat(text_of("name"), text_of("text"), self.now) {
            Ok(event) => {
                let EventKind::Chat { name, text } = &event.kind else {
                    panic!("chat made {event:?}");
                };
                for (field, value) in [(name, text_of("name")), (text, text_of("text"))] {
                    assert_eq!(field.as_str(), value.trim());
                    assert!(!field.is_empty() && !field.chars().any(char::is_control));
                }
                self.check_events(&before, &[event]);
            }
            Err(error) => {
                assert!(matches!(error, CommandError::InvalidValue(_)), "{error:?}");
                assert_eq!(self.room, before);
            }
        }
        self.check_room();
    }

    /// Fires the end-of-video timer as the actor does, at the moment the video
    /// ends, for every end up to `until`.
    fn fire_end_timer(&mut self, until: i64) {
        for _ in 0..3 {
            let Some(ends_at) = self.room.state.ends_at() else {
                return;
            };
            if ends_at > until {
                return;
            }
            let at = ends_at.max(self.now);
            self.now = at;
            let before = self.room.clone();
            let events = self.room.on_end(&Inputs::at(at));
            // The actor re-arms the timer from `ends_at` after every wake-up: a
            // timer that finds nothing to do would fire again at once, forever.
            assert!(
                !events.is_empty(),
                "the end timer at {at} (ends_at {ends_at}) did nothing: {before:?}"
            );
            self.check_events(&before, &events);
            let causes: Vec<_> = events.iter().map(|e| cause_of(&e.kind)).collect();
            assert!(
                causes == [Some(Cause::Ended)] || causes == [Some(Cause::Next), None],
                "{causes:?}"
            );
            self.check_room();
        }
        panic!("the end timer fired three times in a row");
    }

    /// The rules for the events of one step that went from `before` to `self.room`.
    fn check_events(&mut self, before: &Room, events: &[Event]) {
        assert!(events.len() <= 2, "{} events from one step", events.len());
        for (i, event) in events.iter().enumerate() {
            assert_eq!(event.version, before.version + 1 + i as u64);
            assert_eq!(event.server_time, self.now);
            check_frame(event);
            // Through the wire form, as between nodes.
            let wire = serde_json::to_string(event).expect("events serialize");
            let received: Event = serde_json::from_str(&wire).expect("events deserialize");
            assert_eq!(&received, event, "{wire}");
            self.mirror.absorb(&received);
        }
        assert_eq!(self.room.version, before.version + events.len() as u64);
        if events.is_empty() {
            assert_eq!(&self.room, before, "no event, yet the room changed");
        }
    }

    /// The rules a room follows at every moment.
    fn check_room(&self) {
        let room = &self.room;
        let state = &room.state;
        // No upper bound without a duration: a video of unknown length that plays
        // long enough passes MAX_POSITION, the most a command may ask for.
        assert!(
            state.position.is_finite() && state.position >= 0.0,
            "{state:?}"
        );
        assert!(
            state.rate.is_finite() && (MIN_RATE..=MAX_RATE).contains(&state.rate),
            "{state:?}"
        );
        if let Some(duration) = state.duration {
            assert!(
                duration.is_finite() && duration > 0.0 && duration <= MAX_POSITION,
                "{state:?}"
            );
            assert!(state.position <= duration, "{state:?}");
        }
        assert!(
            state.source.as_ref().is_none_or(|s| s.validate().is_ok()),
            "{state:?}"
        );
        assert!(state.updated_at <= self.now, "{state:?} at {}", self.now);
        for probe in [-5_000, 0, 1, 999, 60_000, 3_600_000, MAX_WAIT_MS as i64] {
            let position = state.position_at(self.now + probe);
            assert!(
                position.is_finite() && position >= 0.0,
                "{state:?} at +{probe}"
            );
            if let Some(duration) = state.duration {
                assert!(position <= duration, "{state:?} at +{probe}");
            }
        }
        match state.ends_at() {
            Some(ends_at) => {
                assert!(!state.paused && state.duration.is_some(), "{state:?}");
                assert!(ends_at >= state.updated_at, "{state:?}");
            }
            None => assert!(state.paused || state.duration.is_none(), "{state:?}"),
        }
        // The queue.
        assert!(room.queue.len() <= MAX_QUEUE);
        for (i, item) in room.queue.iter().enumerate() {
            assert_eq!(item.source.validate(), Ok(()), "{item:?}");
            let number: u64 = item
                .item_id
                .strip_prefix('q')
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("item id {:?}", item.item_id));
            assert!(number >= 1 && number < room.next_item_number, "{item:?}");
            assert!(
                room.queue[..i]
                    .iter()
                    .all(|other| other.item_id != item.item_id),
                "item id {:?} twice",
                item.item_id
            );
            if let Some(title) = &item.title {
                assert!(!title.is_empty() && title.trim() == title, "{item:?}");
                assert!(title.chars().count() <= MAX_TITLE_CHARS, "{item:?}");
                assert!(!title.chars().any(char::is_control), "{item:?}");
            }
        }
        // Everything another node sees, and everything a restart keeps.
        let gate = GateSettings::default();
        assert_eq!(self.mirror.view(0, self.now, gate), room.view(0, self.now, gate));
        let stored = serde_json::to_vec(room).expect("rooms serialize");
        let restored: Room = serde_json::from_slice(&stored).expect("rooms deserialize");
        assert_eq!(&restored, room);
    }
}

/// The cause of a `state` event, `None` for any other kind.
fn cause_of(kind: &EventKind) -> Option<Cause> {
    match kind {
        EventKind::State { cause, .. } => Some(*cause),
        _ => None,
    }
}

/// Each command makes only the events of its kind.
fn check_causes(command: &Command, events: &[Event]) {
    let causes: Vec<_> = events.iter().map(|e| cause_of(&e.kind)).collect();
    let state = |cause| causes.is_empty() || causes == [Some(cause)];
    let ok = match command {
        Command::Play { .. } => state(Cause::Play),
        Command::Pause { .. } => state(Cause::Pause),
        Command::Seek { .. } => state(Cause::Seek),
        Command::Load { .. } => state(Cause::Load),
        Command::Rate { .. } => state(Cause::Rate),
        Command::Duration { .. } => state(Cause::Duration),
        Command::QueueAdd { .. } | Command::QueueRemove { .. } => {
            matches!(
                events,
                [Event {
                    kind: EventKind::Queue { .. },
                    ..
                }]
            )
        }
        Command::QueueMove { .. } => {
            matches!(
                events,
                [] | [Event {
                    kind: EventKind::Queue { .. },
                    ..
                }]
            )
        }
        Command::Next {} => causes.is_empty() || causes == [Some(Cause::Next), None],
        Command::Control { .. } => {
            matches!(
                events,
                [] | [Event {
                    kind: EventKind::Control { .. },
                    ..
                }]
            )
        }
        Command::ReadyGate { .. } => {
            matches!(
                events,
                [] | [Event {
                    kind: EventKind::ReadyGate { .. },
                    ..
                }]
            )
        }
    };
    assert!(ok, "{command:?} made {events:?}");
}

/// An event's SSE frame is one message: `id`, `event` and a single `data` line
/// holding JSON that names the same version.
fn check_frame(event: &Event) {
    let frame = event.to_frame(None);
    let text = std::str::from_utf8(&frame.bytes).expect("frames are UTF-8");
    let head = format!(
        "id: {}\nevent: {}\ndata: ",
        event.version,
        event.kind.name()
    );
    let data = text
        .strip_prefix(head.as_str())
        .and_then(|rest| rest.strip_suffix("\n\n"))
        .unwrap_or_else(|| panic!("frame {text:?}"));
    assert!(!data.contains(['\n', '\r']), "frame {text:?}");
    let data: Map<String, Value> = serde_json::from_str(data).expect("data is a JSON object");
    assert_eq!(
        data.get("version").and_then(Value::as_u64),
        Some(event.version)
    );
    assert_eq!(frame.version, Some(event.version));
}
