//! Moderation: what the `moderate` group may do to what others said.

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
                Err(CommandError::Unauthorized) => Err("unauthorized"),
                Err(other) => panic!("{other:?}"),
            };
            assert_eq!(got, expected, "{token:?} {version}");
        }
        let view = room.view(0, 4, GateSettings::default());
        let texts: Vec<&str> = view.chat.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts, ["two"]);
    }
}
