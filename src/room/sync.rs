//! Sync health: what each listener's page reports about its own drift, and the
//! room's summary of it ("37 of 40 in sync").
//!
//! A page measures `|player position − room position|` and every
//! `--sync-report-interval` sends its drift p50/p95 over the last interval, bound
//! to its live event stream by the stream token (so forty listeners behind one
//! address are forty reporters). The room keeps one report per stream,
//! overwritten by the next, forgotten [`REPORT_LIFETIME_INTERVALS`] intervals
//! after it arrived or as soon as the stream closes on the node that held it.
//!
//! The summary ([`SyncSummary`]) is a pure function of the live reports
//! ([`summarize`]): how many report, how many have a p95 within
//! [`IN_SYNC_MS`] and are not buffering, the room's drift p95, defined as the
//! nearest-rank 95th percentile of the playing (not buffering) reporters' own
//! p95s (with fewer than 20 of them, that is the largest), and who is behind: the worst
//! [`BEHIND_LISTED`] of those out of sync, buffering ones first, by the name
//! their page reported (so the host sees who stalls). The Redis backplane
//! computes the same thing in Lua (`backplane/lua/sync.lua`) over the reports
//! of every node; one table of cases (`tests/cases/sync_summary.json`) tests
//! both, so they cannot drift apart.
//!
//! Pages learn the summary from the snapshot and from id-less `sync` events,
//! sent only when the summary changed and at most once per
//! [`SYNC_EVENT_INTERVAL`] ([`SyncAnnouncer`]), so a room of forty reporters
//! costs its listeners one small frame every few seconds at most.

use std::collections::HashMap;
use std::time::Duration;

pub use super::limits::{IN_SYNC_MS, MAX_DRIFT_MS};
/// A report counts for this many report intervals after it arrived.
pub const REPORT_LIFETIME_INTERVALS: u32 = 3;
/// The summary lists at most this many listeners as `behind`.
pub const BEHIND_LISTED: usize = 5;
/// `sync` events are coalesced to at most one per this interval.
pub const SYNC_EVENT_INTERVAL: Duration = Duration::from_secs(2);

/// The player a page drives, as it reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlayerKind {
    Youtube,
    Media,
    Sim,
}

impl PlayerKind {
    /// Every kind's wire name, for the body's field table.
    pub const NAMES: &'static [&'static str] = &["youtube", "media", "sim"];

    pub fn as_str(self) -> &'static str {
        match self {
            PlayerKind::Youtube => "youtube",
            PlayerKind::Media => "media",
            PlayerKind::Sim => "sim",
        }
    }
}

/// One page's drift over its last report interval, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftReport {
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub player: PlayerKind,
    /// The page's player is buffering (stalled) while the room plays.
    pub buffering: bool,
    /// The listener's display name, trimmed; shown to the room when behind.
    pub name: Option<String>,
    /// The page's player's length of the room's current item, in seconds.
    pub duration: Option<f64>,
}

/// The room's sync health, as the snapshot, `GET /api/rooms/{id}` and the
/// `sync` event carry it.
#[derive(
    Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[schema(as = SyncSummary)]
pub struct SyncSummary {
    /// Listeners whose report is live (one per open event stream at most).
    pub reporting: u64,
    /// Of those, how many report a drift p95 of at most 50 ms and are not buffering.
    pub in_sync: u64,
    /// The nearest-rank 95th percentile of the drift p95s of the reporters that
    /// are not buffering, in ms (0.1 ms steps); `null` while none reports.
    pub drift_p95_ms: Option<f64>,
    /// Who is behind: at most 5 of the reporters that are not in sync, those
    /// buffering first, then the largest drift first.
    #[serde(default)]
    #[schema(required = true)]
    pub behind: Vec<Behind>,
}

/// A listener out of sync, as the summary lists it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[schema(as = SyncBehind)]
pub struct Behind {
    /// The name its page reported; `null` when it gave none.
    pub name: Option<String>,
    /// Its drift p95, in ms (0.1 ms steps).
    pub drift_p95_ms: f64,
    /// Its player is buffering while the room plays.
    pub buffering: bool,
}

/// One live report, as [`summarize`] reads it.
#[derive(Debug, Clone, Copy)]
pub struct Reported<'a> {
    /// The stream's id: orders equal drifts, so a summary is one function of its reports.
    pub stream: &'a str,
    pub p95_ms: f64,
    pub buffering: bool,
    pub name: Option<&'a str>,
}

impl Reported<'_> {
    fn in_sync(&self) -> bool {
        !self.buffering && self.p95_ms <= IN_SYNC_MS
    }
}

/// Rounds a drift to the summary's 0.1 ms steps, halves away from zero (`sync.lua`
/// rounds the same way). Reports are rounded so when they are taken (`http::sync`).
pub fn tenths(ms: f64) -> f64 {
    (ms * 10.0).round() / 10.0
}

/// The summary of the live reports.
pub fn summarize<'a>(reports: impl IntoIterator<Item = Reported<'a>>) -> SyncSummary {
    let mut p95s = Vec::new();
    let mut reporting = 0;
    let mut in_sync = 0;
    let mut behind: Vec<Reported<'a>> = Vec::new();
    for report in reports {
        reporting += 1;
        // A stalled or loading player's distance is not drift (it says how long it waits).
        if !report.buffering {
            p95s.push(report.p95_ms);
        }
        if report.in_sync() {
            in_sync += 1;
        } else {
            behind.push(report);
        }
    }
    if reporting == 0 {
        return SyncSummary::default();
    }
    // Nearest rank: the smallest value with at least 95 % of values at or below it.
    // A selection, not a sort: this runs on every report (linear in the reporters).
    let rank = (p95s.len() * 95).div_ceil(100).max(1);
    let drift_p95_ms = match p95s.is_empty() {
        true => None,
        false => Some(tenths(
            *p95s.select_nth_unstable_by(rank - 1, f64::total_cmp).1,
        )),
    };
    // The worst few: buffering first, then the largest drift, then the stream id.
    let worst = |a: &Reported, b: &Reported| {
        b.buffering
            .cmp(&a.buffering)
            .then(b.p95_ms.total_cmp(&a.p95_ms))
            .then(a.stream.cmp(b.stream))
    };
    if behind.len() > BEHIND_LISTED {
        behind.select_nth_unstable_by(BEHIND_LISTED - 1, worst);
        behind.truncate(BEHIND_LISTED);
    }
    behind.sort_unstable_by(worst);
    SyncSummary {
        reporting,
        in_sync,
        drift_p95_ms,
        behind: behind
            .into_iter()
            .map(|r| Behind {
                name: r.name.map(str::to_owned),
                drift_p95_ms: tenths(r.p95_ms),
                buffering: r.buffering,
            })
            .collect(),
    }
}

/// A change to a shared room's reports (see `SharedRooms::sync`).
#[derive(Debug, Clone)]
pub enum SyncChange {
    /// A stream's report; its duration, if any, is of `item` (the room's
    /// item at receipt, see `Room::reported_item`).
    Report {
        stream: String,
        report: DriftReport,
        item: String,
    },
    /// These streams closed.
    Forget(Vec<String>),
    /// Only forget what expired.
    Sweep,
}

/// A changed room's sync summary, and for a report with a duration, the
/// durations the live reports give for its item (one per stream).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncTaken {
    pub summary: SyncSummary,
    pub durations: Vec<f64>,
}

/// Why a report was not taken. Nothing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SyncRefusal {
    /// The same stream reported less than half an interval ago.
    #[error("this stream reported less than half a report interval ago; wait {retry_after_ms} ms")]
    TooSoon { retry_after_ms: u64 },
    /// The room holds `--max-sync-reports` live reports already.
    #[error("this room holds as many sync reports as it may; try again shortly")]
    Full,
}

/// The rules every keeper of reports applies (here or in Lua).
#[derive(Debug, Clone, Copy)]
pub struct SyncRules {
    /// `--sync-report-interval`.
    pub interval: Duration,
    /// `--max-sync-reports`: live reports one room keeps at most.
    pub max_reports: usize,
}

impl SyncRules {
    /// How long a report counts.
    pub fn lifetime_ms(&self) -> i64 {
        (self.interval * REPORT_LIFETIME_INTERVALS).as_millis() as i64
    }

    /// The shortest gap between two reports of one stream.
    pub fn min_gap_ms(&self) -> i64 {
        (self.interval / 2).as_millis() as i64
    }
}

#[derive(Debug, Clone)]
struct Entry {
    p95_ms: f64,
    received_at: i64,
    buffering: bool,
    name: Option<Box<str>>,
    /// The reported duration and the item it was reported for.
    duration: Option<(Box<str>, f64)>,
}

/// The live reports of one room kept by this process, by stream id.
#[derive(Debug)]
pub struct SyncBoard {
    rules: SyncRules,
    reports: HashMap<String, Entry>,
}

impl SyncBoard {
    pub fn new(rules: SyncRules) -> Self {
        Self {
            rules,
            reports: HashMap::new(),
        }
    }

    /// Takes `report` as the stream's current one (after forgetting the expired);
    /// its duration, if any, counts for `item` (the room's item at receipt).
    pub fn record(
        &mut self,
        stream: &str,
        report: &DriftReport,
        item: &str,
        now: i64,
    ) -> Result<(), SyncRefusal> {
        self.prune(now);
        match self.reports.get(stream) {
            Some(previous) => {
                let wait = previous.received_at + self.rules.min_gap_ms() - now;
                if wait > 0 {
                    return Err(SyncRefusal::TooSoon {
                        retry_after_ms: wait as u64,
                    });
                }
            }
            None if self.reports.len() >= self.rules.max_reports => return Err(SyncRefusal::Full),
            None => {}
        }
        self.reports.insert(
            stream.to_owned(),
            Entry {
                p95_ms: report.p95_ms,
                received_at: now,
                buffering: report.buffering,
                name: report.name.as_deref().map(Box::from),
                duration: report.duration.map(|d| (Box::from(item), d)),
            },
        );
        Ok(())
    }

    /// The durations live reports give for `item`, one per stream.
    pub fn durations(&self, item: &str) -> Vec<f64> {
        self.reports
            .values()
            .filter_map(|entry| entry.duration.as_ref())
            .filter(|(of, _)| &**of == item)
            .map(|(_, d)| *d)
            .collect()
    }

    /// The stream closed: its report stops counting now.
    pub fn forget(&mut self, stream: &str) {
        self.reports.remove(stream);
    }

    /// Forgets reports older than their lifetime.
    pub fn prune(&mut self, now: i64) {
        let lifetime = self.rules.lifetime_ms();
        self.reports
            .retain(|_, entry| entry.received_at + lifetime > now);
    }

    /// When the oldest report stops counting (server ms).
    pub fn next_expiry(&self) -> Option<i64> {
        let lifetime = self.rules.lifetime_ms();
        self.reports
            .values()
            .map(|entry| entry.received_at + lifetime)
            .min()
    }

    pub fn summary(&self) -> SyncSummary {
        summarize(self.reports.iter().map(|(stream, entry)| Reported {
            stream,
            p95_ms: entry.p95_ms,
            buffering: entry.buffering,
            name: entry.name.as_deref(),
        }))
    }
}

/// Coalesces `sync` events: one when the summary changed, at most one per
/// [`SYNC_EVENT_INTERVAL`]; a change inside the interval waits for its end.
#[derive(Debug, Default)]
pub struct SyncAnnouncer {
    /// The summary now.
    current: SyncSummary,
    /// The summary last announced.
    sent: SyncSummary,
    /// Server time (ms) of the last announcement.
    sent_at: Option<i64>,
}

impl SyncAnnouncer {
    pub fn current(&self) -> SyncSummary {
        self.current.clone()
    }

    /// The summary is now `summary` (at server time `now`, ms): answers it when
    /// it is due to be announced.
    pub fn update(&mut self, summary: SyncSummary, now: i64) -> Option<SyncSummary> {
        self.current = summary;
        if self.deadline(now).is_some_and(|at| at <= now) {
            self.due(now)
        } else {
            None
        }
    }

    /// When (server ms) a changed summary may be announced; `None` when nothing
    /// changed.
    pub fn deadline(&self, now: i64) -> Option<i64> {
        if self.current == self.sent {
            return None;
        }
        Some(
            self.sent_at
                .map_or(now, |at| at + SYNC_EVENT_INTERVAL.as_millis() as i64),
        )
    }

    /// The timer fired at `now`: answers the summary to announce, if it changed.
    pub fn due(&mut self, now: i64) -> Option<SyncSummary> {
        if self.current == self.sent {
            return None;
        }
        self.sent = self.current.clone();
        self.sent_at = Some(now);
        Some(self.current.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(p95_ms: f64) -> DriftReport {
        DriftReport {
            p50_ms: p95_ms / 2.0,
            p95_ms,
            player: PlayerKind::Media,
            buffering: false,
            name: None,
            duration: None,
        }
    }

    /// The summary of nameless, playing reporters with these p95s.
    fn summary_of(p95s: &[f64]) -> SyncSummary {
        let streams: Vec<String> = (0..p95s.len()).map(|i| format!("s{i:03}")).collect();
        summarize(p95s.iter().zip(&streams).map(|(&p95_ms, stream)| Reported {
            stream,
            p95_ms,
            buffering: false,
            name: None,
        }))
    }

    const RULES: SyncRules = SyncRules {
        interval: Duration::from_secs(5),
        max_reports: 3,
    };

    /// The table of cases `summarize` and the Redis backplane's `sync.lua` are both
    /// tested against (`tests/sync_lua.rs` runs the Lua side), so they cannot drift.
    const CASES: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/cases/sync_summary.json"
    ));

    #[derive(serde::Deserialize)]
    struct Case {
        name: String,
        reports: Vec<CaseReport>,
        summary: SyncSummary,
    }

    #[derive(serde::Deserialize)]
    struct CaseReport {
        stream: String,
        p95_ms: f64,
        #[serde(default)]
        buffering: bool,
        #[serde(default)]
        name: Option<String>,
    }

    impl CaseReport {
        fn reported(&self) -> Reported<'_> {
            Reported {
                stream: &self.stream,
                p95_ms: self.p95_ms,
                buffering: self.buffering,
                name: self.name.as_deref(),
            }
        }
    }

    #[test]
    fn every_case_of_the_shared_table_is_summarized_as_it_says() {
        let cases: Vec<Case> = serde_json::from_str(CASES).expect("the table of cases parses");
        assert!(cases.len() >= 10, "the table holds its cases");
        for case in &cases {
            let forward = summarize(case.reports.iter().map(CaseReport::reported));
            assert_eq!(forward, case.summary, "case {:?}", case.name);
            // The summary may not depend on the order the reports come in.
            let backward = summarize(case.reports.iter().rev().map(CaseReport::reported));
            assert_eq!(backward, case.summary, "case {:?} (reversed)", case.name);
        }
    }

    #[test]
    fn a_stream_has_one_report_and_it_expires_after_three_intervals() {
        let mut board = SyncBoard::new(RULES);
        board.record("a", &report(10.0), "q1", 0).unwrap();
        assert_eq!(
            board.record("a", &report(90.0), "q1", 2_000),
            Err(SyncRefusal::TooSoon {
                retry_after_ms: 500
            })
        );
        board.record("a", &report(90.0), "q1", 2_500).unwrap();
        board.record("b", &report(20.0), "q1", 3_000).unwrap();
        let summary = board.summary();
        assert_eq!((summary.reporting, summary.in_sync), (2, 1));
        assert_eq!(board.next_expiry(), Some(17_500));
        board.prune(17_500);
        assert_eq!(board.summary().reporting, 1);
        board.forget("b");
        assert_eq!(board.summary(), SyncSummary::default());
    }

    #[test]
    fn a_full_board_refuses_new_streams_but_takes_known_ones() {
        let mut board = SyncBoard::new(RULES);
        for stream in ["a", "b", "c"] {
            board.record(stream, &report(1.0), "q1", 0).unwrap();
        }
        assert_eq!(
            board.record("d", &report(1.0), "q1", 0),
            Err(SyncRefusal::Full)
        );
        board.record("a", &report(2.0), "q1", 5_000).unwrap();
    }

    #[test]
    fn durations_count_per_stream_for_the_item_they_were_reported_for() {
        let mut board = SyncBoard::new(RULES);
        let with = |d: f64| DriftReport {
            duration: Some(d),
            ..report(1.0)
        };
        board.record("a", &with(5.0), "q1", 0).unwrap();
        board.record("b", &with(9.0), "q2", 0).unwrap();
        board.record("c", &report(1.0), "q1", 0).unwrap();
        assert_eq!(board.durations("q1"), vec![5.0]);
        board.record("a", &with(6.0), "q1", 5_000).unwrap();
        assert_eq!(board.durations("q1"), vec![6.0]);
        board.forget("a");
        assert!(board.durations("q1").is_empty());
    }

    #[test]
    fn sync_events_come_on_change_at_most_once_per_interval() {
        let mut announcer = SyncAnnouncer::default();
        let t0 = 1_000_000;
        assert_eq!(announcer.update(SyncSummary::default(), t0), None);
        let one = summary_of(&[1.0]);
        assert_eq!(announcer.update(one.clone(), t0), Some(one.clone()));
        let two = summary_of(&[1.0, 2.0]);
        assert_eq!(announcer.update(two.clone(), t0), None);
        let interval = SYNC_EVENT_INTERVAL.as_millis() as i64;
        assert_eq!(announcer.deadline(t0), Some(t0 + interval));
        assert_eq!(announcer.due(t0 + interval), Some(two.clone()));
        // Back and forth within the interval: nothing to say at its end.
        let later = t0 + interval + 1;
        assert_eq!(announcer.update(one, later), None);
        assert_eq!(announcer.update(two, later), None);
        assert_eq!(announcer.deadline(later), None);
    }
}
