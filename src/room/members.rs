//! Who's here: the named listeners a room shows (its `members`), and the
//! changes to them that go out as `members` events, never the whole list.
//!
//! The list shown is what listeners were last told: a snapshot carries it,
//! and each `members` event is the difference from the one before, so a
//! client that applies them in order holds what the server holds. A change
//! of the count alone sends nothing: `presence` carries the count.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

/// Most named listeners a room shows; the rest count in `unnamed`.
pub const MAX_SHOWN_MEMBERS: usize = 100;

/// A listening stream that gave a name (`?name=` on its event stream).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Member {
    /// The stream's id, as its `hello` gave it (what `kick` takes).
    pub stream: String,
    pub name: String,
}

/// The data of a `members` event: who joined the list, who left it (stream
/// ids), and how many listeners it does not show now.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = MembersEvent)]
pub struct MembersChange {
    pub joined: Vec<Member>,
    pub left: Vec<String>,
    pub unnamed: u64,
}

/// The list as listeners were last told it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Roster {
    shown: Vec<Member>,
    unnamed: u64,
}

impl Roster {
    /// The named listeners shown, in the order they joined the list.
    pub fn shown(&self) -> &[Member] {
        &self.shown
    }

    /// The listeners not shown (without a name, or past
    /// [`MAX_SHOWN_MEMBERS`]) as of the last update.
    pub fn unnamed(&self) -> u64 {
        self.unnamed
    }

    /// The listeners not shown, of `listeners` now.
    pub fn unnamed_of(&self, listeners: u64) -> u64 {
        listeners.saturating_sub(self.shown.len() as u64)
    }

    /// Brings the list to `named` (every named listener now, earliest first)
    /// among `listeners` in all. Those shown stay while they listen; free
    /// places go to the earliest of the others. Answers the change, if any.
    pub fn update(&mut self, named: &[Member], listeners: u64) -> Option<MembersChange> {
        let live: HashSet<&str> = named.iter().map(|m| m.stream.as_str()).collect();
        let mut left = Vec::new();
        self.shown.retain(|member| {
            let stays = live.contains(member.stream.as_str());
            if !stays {
                left.push(member.stream.clone());
            }
            stays
        });
        let shown: HashSet<String> = self.shown.iter().map(|m| m.stream.clone()).collect();
        let room = MAX_SHOWN_MEMBERS.saturating_sub(self.shown.len());
        let joined: Vec<Member> = named
            .iter()
            .filter(|member| !shown.contains(&member.stream))
            .take(room)
            .cloned()
            .collect();
        self.shown.extend(joined.iter().cloned());
        let unnamed = listeners.saturating_sub(self.shown.len() as u64);
        self.unnamed = unnamed;
        // A count alone is no news: `presence` carries it.
        if joined.is_empty() && left.is_empty() {
            return None;
        }
        Some(MembersChange {
            joined,
            left,
            unnamed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(n: usize) -> Member {
        Member {
            stream: format!("s{n}"),
            name: format!("name {n}"),
        }
    }

    fn members(ns: &[usize]) -> Vec<Member> {
        ns.iter().copied().map(member).collect()
    }

    #[test]
    fn each_change_says_who_joined_and_left_and_how_many_are_unnamed() {
        let mut roster = Roster::default();
        // (named now, listeners) -> (joined, left, unnamed), or no event.
        type Expected = Option<(&'static [usize], &'static [usize], u64)>;
        let steps: &[(&[usize], u64, Expected)] = &[
            (&[], 0, None),
            (&[1, 2], 3, Some((&[1, 2], &[], 1))),
            (&[1, 2], 3, None),
            (&[1, 2], 4, None),
            (&[2, 3], 4, Some((&[3], &[1], 2))),
            (&[], 0, Some((&[], &[2, 3], 0))),
        ];
        for (at, (named, listeners, expected)) in steps.iter().enumerate() {
            let got = roster.update(&members(named), *listeners);
            let expected = expected.map(|(joined, left, unnamed)| MembersChange {
                joined: members(joined),
                left: left.iter().map(|n| format!("s{n}")).collect(),
                unnamed,
            });
            assert_eq!(got, expected, "step {at}");
        }
    }

    #[test]
    fn at_most_a_hundred_are_shown_and_those_shown_stay() {
        let mut roster = Roster::default();
        let all: Vec<usize> = (0..MAX_SHOWN_MEMBERS + 5).collect();
        let change = roster.update(&members(&all), all.len() as u64 + 2).unwrap();
        assert_eq!(change.joined.len(), MAX_SHOWN_MEMBERS);
        assert_eq!(change.unnamed, 7, "5 named past the bound and 2 unnamed");
        // The first leaves: the earliest not shown takes the place.
        let change = roster
            .update(&members(&all[1..]), all.len() as u64 + 1)
            .unwrap();
        assert_eq!(change.left, ["s0"]);
        assert_eq!(change.joined, members(&[MAX_SHOWN_MEMBERS]));
        assert_eq!(roster.shown().len(), MAX_SHOWN_MEMBERS);
        assert_eq!(roster.unnamed(), 6);
    }
}
