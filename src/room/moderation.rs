//! Moderation: what the `moderate` group may do to what others said, and
//! the streams it kicked.

use std::collections::{HashSet, VecDeque};

use super::check::CommandError;
use super::event::{Event, EventKind};
use super::state::Room;

impl Room {
    /// `delete_chat`: the kept message sent as `chat_version` is gone from
    /// later snapshots (one `chat_deleted` event). A message the room does
    /// not keep (never sent, cleared, or pushed out) is `not_found`.
    pub(super) fn delete_chat(
        &mut self,
        chat_version: u64,
        now: i64,
    ) -> Result<Vec<Event>, CommandError> {
        let Some(index) = self.chat.iter().position(|m| m.version == chat_version) else {
            return Err(CommandError::NotFound(format!(
                "the room keeps no chat message of version {chat_version}"
            )));
        };
        self.chat.remove(index);
        Ok(vec![
            self.event(now, EventKind::ChatDeleted { chat_version })
        ])
    }
}

/// Kicked streams a room remembers; past this, the oldest is forgotten. A
/// stream token lives at most `--max-stream-age` plus a minute, so only a
/// room kicking more than this many streams in that time lets an old one back.
pub const MAX_KICKED: usize = 1024;

/// Whether `stream` is written as a stream id is (32 hex digits, as its
/// `hello` gave it): anything else names no stream, and is not remembered.
pub fn is_stream_id(stream: &str) -> bool {
    stream.len() == 32 && stream.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The streams kicked from a room, newest [`MAX_KICKED`] of them: their tokens
/// are refused. Kept by the driver of a room held in one process.
#[derive(Debug, Default)]
pub struct KickedStreams {
    order: VecDeque<String>,
    set: HashSet<String>,
}

impl KickedStreams {
    /// Remembers `stream` (a well-formed id only); forgets the oldest past the bound.
    pub fn insert(&mut self, stream: &str) {
        if !is_stream_id(stream) || self.set.contains(stream) {
            return;
        }
        if self.order.len() >= MAX_KICKED {
            if let Some(oldest) = self.order.pop_front() {
                self.set.remove(&oldest);
            }
        }
        self.order.push_back(stream.to_owned());
        self.set.insert(stream.to_owned());
    }

    pub fn contains(&self, stream: &str) -> bool {
        self.set.contains(stream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::room::command::Command;
    use crate::room::view::{Control, GateSettings};
    use crate::room::Inputs;

    #[test]
    fn a_deleted_message_is_gone_from_the_next_snapshot() {
        let mut room = Room::new("r".into(), "r".into(), Control::Host, None, "host", 3, 0);
        room.keep_chat(10);
        let kept = room.chat("Ann", "one", 1).unwrap().version;
        room.chat("Bo", "two", 2).unwrap();
        let delete = |chat_version| Command::DeleteChat { chat_version };
        let cases = [
            (Some("host"), kept, Ok(1)),
            (Some("host"), kept, Err("not_found")),
            (None, kept + 1, Err("unauthorized")),
        ];
        for (token, version, expected) in cases {
            let decided = room.decide(token, None, delete(version), &Inputs::at(3));
            let got = match decided {
                Ok(events) => Ok(events.len()),
                Err(CommandError::NotFound(_)) => Err("not_found"),
                Err(CommandError::Unauthorized(_)) => Err("unauthorized"),
                Err(other) => panic!("{other:?}"),
            };
            assert_eq!(got, expected, "{token:?} {version}");
        }
        let view = room.view(0, 4, GateSettings::default());
        let texts: Vec<&str> = view.chat.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts, ["two"]);
    }

    #[test]
    fn kicked_streams_are_well_formed_ids_and_bounded() {
        let id = |n: usize| format!("{n:032x}");
        let mut kicked = KickedStreams::default();
        for (stream, remembered) in [
            (id(1), true),
            ("not-a-stream".to_string(), false),
            ("a".repeat(33), false),
            ("g".repeat(32), false),
        ] {
            kicked.insert(&stream);
            assert_eq!(kicked.contains(&stream), remembered, "{stream}");
        }
        for n in 2..=MAX_KICKED + 1 {
            kicked.insert(&id(n));
        }
        assert!(!kicked.contains(&id(1)), "the oldest is forgotten");
        assert!(kicked.contains(&id(2)) && kicked.contains(&id(MAX_KICKED + 1)));
        assert_eq!(kicked.order.len(), MAX_KICKED);
    }

    #[test]
    fn a_kick_is_for_the_moderate_group_and_changes_nothing_others_see() {
        let mut room = Room::new("r".into(), "r".into(), Control::Open, None, "host", 3, 0);
        let kick = || Command::Kick {
            stream: format!("{:032x}", 7),
        };
        let before = room.version;
        let cases = [(Some("host"), Ok(0)), (None, Err("unauthorized"))];
        for (token, expected) in cases {
            let got = match room.decide(token, None, kick(), &Inputs::at(3)) {
                Ok(events) => Ok(events.len()),
                Err(CommandError::Unauthorized(_)) => Err("unauthorized"),
                Err(other) => panic!("{other:?}"),
            };
            assert_eq!(got, expected, "{token:?}");
        }
        assert_eq!(room.version, before);
    }
}
