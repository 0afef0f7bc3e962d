//! Which commit each version of a served room came from, as this node heard
//! it: how a node notices that the shared history was rewritten under it.
//!
//! Replication in Redis is asynchronous: a commit acknowledged and published
//! just before its primary dies can be missing on the replica that takes
//! over, and the next command then commits *another* event under the same
//! version. A mirror that held the lost one would drop the new one as already
//! seen and apply the next on top of it: a silent fork. So every commit draws
//! a random commit id, stored in the room hash (`cid`) and carried by each of
//! its events (in the feed and in the stream). A node remembers the ids of the
//! versions it delivered; one version heard with two ids, or a room found
//! behind what was delivered, means the history was rewritten: the mirror is
//! told to start over from the room as Redis has it (a fresh snapshot).
//!
//! Before it starts over, the node works out which of the versions it
//! delivered Redis lost ([`lost`]) and records them beside the room: a client
//! that got one of them and resumes there, on any node, gets a snapshot rather
//! than the replay of another history.

use std::collections::BTreeMap;
use std::sync::Arc;

use dashmap::DashMap;

/// Versions remembered per room: enough to cover what a failover can lose
/// (the replication lag of a few commands) many times over.
const KEPT: usize = 256;

/// The commit ids of one room's recent versions, as delivered here.
#[derive(Default)]
pub(super) struct Lineage {
    ids: BTreeMap<u64, String>,
    /// A rewrite was seen and the mirror not yet started over: its feed
    /// events are held back until then.
    forked: bool,
}

/// Every served room's lineage, shared by the feed's dispatcher and the calls.
pub(super) type Lineages = Arc<DashMap<Arc<str>, Lineage>>;

/// What hearing one version's commit id says.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Heard {
    /// Consistent with everything delivered so far.
    InLine,
    /// Another commit than the one delivered under that version: rewritten.
    Rewritten,
}

/// One version as a commit wrote it: its commit's id, and the id of the
/// commit of the version before (`None` from a node that predates them).
pub(super) struct Stamp<'a> {
    pub version: u64,
    pub id: &'a str,
    pub prev: Option<&'a str>,
}

/// Remembers that a version came from its commit; says whether that agrees
/// with what was delivered: the same version under another commit, or a
/// version that follows another commit than the one delivered before it,
/// is a rewrite. Once rewritten, the room stays so until [`restart`] (the
/// mirror's catch-up).
pub(super) fn hear(lineages: &Lineages, room_id: &str, stamp: Stamp<'_>) -> Heard {
    let Stamp { version, id, prev } = stamp;
    let mut lineage = lineages.entry(Arc::from(room_id)).or_default();
    if lineage.forked {
        return Heard::Rewritten;
    }
    let parent = version.checked_sub(1).and_then(|v| lineage.ids.get(&v));
    if let (Some(parent), Some(prev)) = (parent, prev) {
        if parent != prev {
            lineage.forked = true;
            return Heard::Rewritten;
        }
    }
    match lineage.ids.get(&version) {
        Some(known) if known != id => {
            lineage.forked = true;
            Heard::Rewritten
        }
        Some(_) => Heard::InLine,
        None => {
            lineage.ids.insert(version, id.to_owned());
            while lineage.ids.len() > KEPT {
                lineage.ids.pop_first();
            }
            Heard::InLine
        }
    }
}

/// Whether the room as Redis has it now (`version`, and the commit id Redis
/// holds for the mirror's version `after`, when it still knows it) continues
/// what this node delivered up to `after`.
pub(super) fn continues(
    lineages: &Lineages,
    room_id: &str,
    after: u64,
    version: u64,
    id_at_after: Option<&str>,
) -> bool {
    if version < after {
        return false;
    }
    let Some(lineage) = lineages.get(room_id) else {
        return true;
    };
    if lineage.forked {
        return false;
    }
    match (lineage.ids.get(&after), id_at_after) {
        (Some(delivered), Some(stored)) => delivered == stored,
        _ => true,
    }
}

/// Whether the room as a commit just read it (at `version`, made by commit
/// `id`) agrees with what this node delivered: not another commit under a
/// version delivered. When it does not, the room is marked rewritten until
/// [`restart`]. (A read below what was delivered is no proof: the feed may
/// have overtaken the read, and the commit's compare-and-set settles it; a
/// commit over a rolled-back room is caught when its own version is heard.)
pub(super) fn agrees(lineages: &Lineages, room_id: &str, version: u64, id: Option<&str>) -> bool {
    let Some(mut lineage) = lineages.get_mut(room_id) else {
        return true;
    };
    let other = match (lineage.ids.get(&version), id) {
        (Some(delivered), Some(id)) => delivered != id,
        _ => false,
    };
    if other {
        lineage.forked = true;
    }
    !lineage.forked
}

/// Starts the room's lineage over from `version` (commit `id`, if known):
/// the mirror now holds the room as Redis has it.
pub(super) fn restart(lineages: &Lineages, room_id: &str, version: u64, id: Option<&str>) {
    let mut lineage = Lineage::default();
    if let Some(id) = id {
        lineage.ids.insert(version, id.to_owned());
    }
    lineages.insert(Arc::from(room_id), lineage);
}

/// The oldest version whose commit id this node remembers for the room.
pub(super) fn oldest(lineages: &Lineages, room_id: &str) -> Option<u64> {
    let lineage = lineages.get(room_id)?;
    lineage.ids.keys().next().copied()
}

/// The versions this node may have delivered that the room as Redis has it
/// does not hold: from the first one Redis lost, or holds under another
/// commit, to the last one delivered (the mirror is at `after`). `stored` is
/// each version's commit id as Redis has it (`None`: a commit without one),
/// from the oldest its history still holds up to `version`, the room's; the
/// delivered versions older than that are left out, since a resume from
/// there gets a snapshot anyway.
pub(super) fn lost(
    lineages: &Lineages,
    room_id: &str,
    after: u64,
    version: u64,
    stored: &BTreeMap<u64, Option<String>>,
) -> Option<(u64, u64)> {
    let oldest_stored = stored.keys().next().copied().unwrap_or(version);
    let mut delivered: Vec<(u64, Option<String>)> = lineages
        .get(room_id)
        .map(|lineage| {
            let ids = lineage.ids.iter();
            ids.map(|(v, id)| (*v, Some(id.clone()))).collect()
        })
        .unwrap_or_default();
    delivered.push((after, None));
    let gone = |(v, id): &(u64, Option<String>)| {
        *v > version
            || (*v >= oldest_stored
                && match (stored.get(v), id) {
                    (None, _) => true,
                    (Some(Some(stored)), Some(id)) => stored != id,
                    _ => false,
                })
    };
    let first = delivered
        .iter()
        .filter(|&d| gone(d))
        .map(|(v, _)| *v)
        .min()?;
    let last = delivered.iter().map(|(v, _)| *v).max()?;
    Some((first, last))
}

/// Forgets a room no longer served here.
pub(super) fn forget(lineages: &Lineages, room_id: &str) {
    lineages.remove(room_id);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp<'a>(version: u64, id: &'a str, prev: Option<&'a str>) -> Stamp<'a> {
        Stamp { version, id, prev }
    }

    #[test]
    fn a_version_heard_with_another_commit_id_is_a_rewrite_until_restarted() {
        let lineages = Lineages::default();
        assert_eq!(hear(&lineages, "r", stamp(5, "a", None)), Heard::InLine);
        assert_eq!(hear(&lineages, "r", stamp(5, "a", None)), Heard::InLine);
        assert_eq!(
            hear(&lineages, "r", stamp(6, "b", Some("a"))),
            Heard::InLine
        );
        assert!(continues(&lineages, "r", 6, 7, Some("b")));
        assert_eq!(
            hear(&lineages, "r", stamp(6, "c", Some("a"))),
            Heard::Rewritten
        );
        assert_eq!(
            hear(&lineages, "r", stamp(7, "d", Some("c"))),
            Heard::Rewritten
        );
        assert!(!continues(&lineages, "r", 6, 7, Some("c")));
        restart(&lineages, "r", 7, Some("d"));
        assert_eq!(
            hear(&lineages, "r", stamp(8, "e", Some("d"))),
            Heard::InLine
        );
    }

    #[test]
    fn a_version_that_follows_another_commit_than_the_one_delivered_is_a_rewrite() {
        let lineages = Lineages::default();
        hear(&lineages, "r", stamp(2, "lost", Some("one")));
        // The other version 2 never reached this node; its successor did.
        assert_eq!(
            hear(&lineages, "r", stamp(3, "next", Some("reused"))),
            Heard::Rewritten
        );
    }

    #[test]
    fn a_commit_over_another_commit_than_the_one_delivered_disagrees() {
        let lineages = Lineages::default();
        hear(&lineages, "r", stamp(4, "a", None));
        assert!(agrees(&lineages, "r", 4, Some("a")));
        assert!(agrees(&lineages, "r", 5, Some("b")));
        // Behind what was delivered: the compare-and-set decides.
        assert!(agrees(&lineages, "r", 3, Some("z")));
        assert!(!agrees(&lineages, "r", 4, Some("x")));
        // And stays so until the mirror starts over.
        assert!(!agrees(&lineages, "r", 4, Some("a")));
        restart(&lineages, "r", 3, Some("z"));
        assert!(agrees(&lineages, "r", 3, Some("z")));
    }

    fn stored(entries: &[(u64, &str)]) -> BTreeMap<u64, Option<String>> {
        entries
            .iter()
            .map(|(v, id)| (*v, Some(id.to_string())))
            .collect()
    }

    #[test]
    fn the_versions_lost_run_from_the_first_redis_lost_or_holds_otherwise_to_the_last_delivered() {
        let lineages = Lineages::default();
        for (version, id, prev) in [(3, "c", "b"), (4, "d", "c"), (5, "e", "d"), (6, "f", "e")] {
            hear(&lineages, "r", stamp(version, id, Some(prev)));
        }
        // Redis kept 3 and 4, lost 5 and 6, and reused 5.
        let redis = stored(&[(3, "c"), (4, "d"), (5, "x")]);
        assert_eq!(lost(&lineages, "r", 6, 5, &redis), Some((5, 6)));
        // Reused up to 7: 5 and 6 still.
        let redis = stored(&[(3, "c"), (4, "d"), (5, "x"), (6, "y"), (7, "z")]);
        assert_eq!(lost(&lineages, "r", 6, 7, &redis), Some((5, 6)));
        // Not reused yet: Redis is at 4.
        assert_eq!(
            lost(&lineages, "r", 6, 4, &stored(&[(3, "c"), (4, "d")])),
            Some((5, 6))
        );
        // Nothing differs: nothing lost.
        let same = stored(&[(3, "c"), (4, "d"), (5, "e"), (6, "f")]);
        assert_eq!(lost(&lineages, "r", 6, 6, &same), None);
        // What Redis no longer holds at all is left out; 4 differs.
        assert_eq!(
            lost(
                &lineages,
                "r",
                6,
                6,
                &stored(&[(4, "w"), (5, "e"), (6, "f")])
            ),
            Some((4, 6))
        );
        // A mirror ahead of the room, remembering no ids.
        assert_eq!(
            lost(&Lineages::default(), "r", 9, 8, &stored(&[(8, "a")])),
            Some((9, 9))
        );
    }

    #[test]
    fn a_room_behind_what_was_delivered_or_with_another_commit_there_does_not_continue_it() {
        let lineages = Lineages::default();
        hear(&lineages, "r", stamp(9, "a", None));
        assert!(!continues(&lineages, "r", 9, 8, None));
        assert!(!continues(&lineages, "r", 9, 12, Some("z")));
        assert!(continues(&lineages, "r", 9, 12, None));
        assert!(!continues(&lineages, "other", 9, 8, None));
        assert!(continues(&lineages, "other", 9, 10, None));
    }
}
