//! Co-hosts: people the host gives a token of their own, so that the groups
//! the room's permissions give to `cohost` are theirs without the host token.
//!
//! Each co-host's token is kept as its SHA-256, like the host token. Adding or
//! revoking one is a change of the room (one `cohosts` event), decided here
//! whichever store holds the room: [`Room::change_cohosts`] is the change, and
//! [`Room::cohosts_answer`] reads the answer from the room after it (so a
//! store that retries a change on conflict answers from what it committed).

use super::check::{check_text, CommandError, Empty};
use super::command::Access;
use super::event::{Event, EventKind};
use super::limits::MAX_CHAT_NAME_CHARS;
pub use super::permissions::{Cohost, CohostView, DEFAULT_MAX_COHOSTS};
use super::state::{hash_token, Room};

/// What the host asks of the room's co-hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CohostCall {
    List,
    /// A new co-host named `name` holding `token`; refused past `max`.
    Add {
        name: String,
        token: String,
        max: usize,
    },
    Revoke {
        cohost_id: String,
    },
}

/// The answer to a [`CohostCall`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CohostAnswer {
    List(Vec<CohostView>),
    Added(CohostView),
    Revoked,
}

impl Room {
    /// The room's co-hosts as clients see them.
    pub fn cohost_views(&self) -> Vec<CohostView> {
        self.cohosts.iter().map(CohostView::from).collect()
    }

    /// Whether `hash` is a live co-host's token hash.
    pub(crate) fn is_cohost(&self, hash: &[u8; 32]) -> bool {
        use subtle::ConstantTimeEq;
        // Every co-host is compared, so timing says nothing about which matched.
        self.cohosts
            .iter()
            .fold(subtle::Choice::from(0), |found, cohost| {
                found | cohost.token_hash.ct_eq(hash)
            })
            .into()
    }

    /// The host's call on co-hosts, checked against `token`: the events of
    /// the change (none for a list).
    pub fn change_cohosts(
        &mut self,
        token: Option<&str>,
        call: &CohostCall,
        now: i64,
    ) -> Result<Vec<Event>, CommandError> {
        self.authorize_for(token, Access::HostOnly, "co-host management")?;
        match call {
            CohostCall::List => return Ok(Vec::new()),
            CohostCall::Add { name, token, max } => {
                let name = check_text("name", name, MAX_CHAT_NAME_CHARS, Empty::Refused)?;
                if self.cohosts.len() >= *max {
                    return Err(CommandError::InvalidValue(format!(
                        "this room has {max} co-hosts, the most it may have"
                    )));
                }
                self.next_cohost_number += 1;
                self.cohosts.push(Cohost {
                    cohost_id: format!("c{}", self.next_cohost_number),
                    name: name.to_owned(),
                    token_hash: hash_token(token),
                });
            }
            CohostCall::Revoke { cohost_id } => {
                let before = self.cohosts.len();
                self.cohosts.retain(|cohost| cohost.cohost_id != *cohost_id);
                if self.cohosts.len() == before {
                    return Err(CommandError::NotFound(format!(
                        "no co-host has the id `{}`",
                        cohost_id.chars().take(64).collect::<String>()
                    )));
                }
            }
        }
        let cohosts = self.cohost_views();
        Ok(vec![self.event(now, EventKind::Cohosts { cohosts })])
    }

    /// The answer to `call`, read from the room after [`Room::change_cohosts`].
    pub fn cohosts_answer(&self, call: &CohostCall) -> CohostAnswer {
        match call {
            CohostCall::List => CohostAnswer::List(self.cohost_views()),
            CohostCall::Add { token, name, .. } => {
                let hash = hash_token(token);
                let added = self.cohosts.iter().find(|c| c.token_hash == hash);
                CohostAnswer::Added(added.map(CohostView::from).unwrap_or(CohostView {
                    cohost_id: String::new(),
                    name: name.clone(),
                }))
            }
            CohostCall::Revoke { .. } => CohostAnswer::Revoked,
        }
    }

    /// A mirror follows a `cohosts` event: the ids and names (hashes are
    /// never on the feed; a mirror never checks tokens itself).
    pub(crate) fn absorb_cohosts(&mut self, cohosts: &[CohostView]) {
        self.cohosts = cohosts
            .iter()
            .map(|view| Cohost {
                cohost_id: view.cohost_id.clone(),
                name: view.name.clone(),
                token_hash: [0; 32],
            })
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::room::command::Command;
    use crate::room::permissions::Caller;
    use crate::room::view::Control;
    use crate::room::Inputs;

    fn room() -> Room {
        Room::new("r".into(), "r".into(), Control::Host, None, "host", 10, 0)
    }

    fn add(name: &str, token: &str) -> CohostCall {
        CohostCall::Add {
            name: name.into(),
            token: token.into(),
            max: 2,
        }
    }

    #[test]
    fn a_cohost_token_works_until_it_is_revoked() {
        let mut room = room();
        let events = room.change_cohosts(Some("host"), &add(" Ann ", "ann-token"), 1);
        assert_eq!(events.map(|e| e.len()), Ok(1));
        let CohostAnswer::Added(ann) = room.cohosts_answer(&add("Ann", "ann-token")) else {
            panic!("an add answers the co-host");
        };
        assert_eq!((ann.cohost_id.as_str(), ann.name.as_str()), ("c1", "Ann"));
        assert_eq!(room.caller(Some("ann-token")), Some(Caller::Cohost));
        let revoke = CohostCall::Revoke {
            cohost_id: "c1".into(),
        };
        room.change_cohosts(Some("host"), &revoke, 2).unwrap();
        assert_eq!(room.caller(Some("ann-token")), None);
        assert!(matches!(
            room.change_cohosts(Some("host"), &revoke, 3),
            Err(CommandError::NotFound(_))
        ));
        // A reset of the host token leaves co-hosts alone.
        room.change_cohosts(Some("host"), &add("Bo", "bo-token"), 4)
            .unwrap();
        room.reset_host_token("new-host", 5);
        assert_eq!(room.caller(Some("bo-token")), Some(Caller::Cohost));
    }

    #[test]
    fn cohost_management_is_the_hosts_alone_and_bounded() {
        let mut room = room();
        room.change_cohosts(Some("host"), &add("Ann", "a"), 1)
            .unwrap();
        let cases = [
            (
                None,
                Err(CommandError::Unauthorized(
                    "co-host management is for the host: send `Authorization: Bearer <host_token>`"
                        .into(),
                )),
            ),
            (Some("wrong"), Err(CommandError::Forbidden)),
            (
                Some("a"),
                Err(CommandError::NotPermitted(
                    "co-host management is for the host".into(),
                )),
            ),
        ];
        for (token, expected) in cases {
            assert_eq!(
                room.change_cohosts(token, &CohostCall::List, 2),
                expected,
                "{token:?}"
            );
        }
        room.change_cohosts(Some("host"), &add("Bo", "b"), 3)
            .unwrap();
        assert!(matches!(
            room.change_cohosts(Some("host"), &add("Cy", "c"), 4),
            Err(CommandError::InvalidValue(_))
        ));
        assert!(matches!(
            room.change_cohosts(Some("host"), &add("  ", "d"), 4),
            Err(CommandError::InvalidValue(_))
        ));
    }

    #[test]
    fn a_cohost_may_do_what_cohost_groups_allow_and_no_more() {
        let mut room = room();
        room.change_cohosts(Some("host"), &add("Ann", "a"), 1)
            .unwrap();
        let give = serde_json::json!({"playback": "cohost"});
        let serde_json::Value::Object(give) = give else {
            unreachable!()
        };
        let inputs = Inputs::at(2);
        room.decide(
            Some("host"),
            None,
            Command::Permissions { permissions: give },
            &inputs,
        )
        .unwrap();
        let cases = [
            (Command::Rate { rate: 1.5 }, Ok(())),
            (
                Command::Next {},
                Err(CommandError::NotPermitted("skip is for the host".into())),
            ),
            (
                Command::ClearChat {},
                Err(CommandError::NotPermitted(
                    "clear_chat is for the host".into(),
                )),
            ),
        ];
        for (command, expected) in cases {
            let name = command.type_name();
            let decided = room.decide(Some("a"), None, command, &inputs);
            assert_eq!(decided.map(|_| ()), expected, "{name}");
        }
    }
}
