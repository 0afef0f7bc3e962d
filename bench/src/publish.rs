//! The publisher: on its own thread and runtime, so its ticks stay on time however
//! busy the listener runtime is. One keep-alive connection and one task per room;
//! each room's commands go out one at a time, so a syncroom room's versions are
//! known in advance (base + 1, base + 2, …) and checked against every answer.
//!
//! Each command's send time is stored *before* its first byte is written, so a
//! listener can time an event it reads even before the command's answer arrives.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::http::Client;
use crate::listener::Shared;
use crate::stats::{Histogram, Summary};
use crate::{CommandKind, PublishMode, Target};

/// How publishing went.
#[derive(Debug)]
pub struct Outcome {
    /// Commands that took effect, per room.
    pub published: Vec<u64>,
    pub errors: u64,
    pub first_error: Option<String>,
    /// Command sent → its answer read, in µs.
    pub round_trip_us: Summary,
    /// First command sent → last answer read.
    pub elapsed: Duration,
}

pub struct Plan {
    pub ticks: usize,
    pub interval: Duration,
    pub mode: PublishMode,
}

/// Publishes on a new thread; the outcome arrives on the returned channel.
pub fn spawn(
    shared: Arc<Shared>,
    plan: Plan,
) -> io::Result<tokio::sync::oneshot::Receiver<Outcome>> {
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("publisher".into())
        .spawn(move || {
            let outcome = runtime.block_on(publish(shared, plan));
            // The receiver is gone only if the run was abandoned: nothing to tell.
            let _ = done_tx.send(outcome);
        })?;
    Ok(done_rx)
}

async fn publish(shared: Arc<Shared>, plan: Plan) -> Outcome {
    let round_trip = Arc::new(Histogram::new());
    let started = Instant::now();
    let mut jobs = Vec::new();
    let mut workers = Vec::new();
    for room in 0..shared.rooms.len() {
        let (tx, rx) = mpsc::unbounded_channel::<()>();
        jobs.push(tx);
        workers.push(tokio::spawn(room_worker(
            shared.clone(),
            room,
            rx,
            round_trip.clone(),
        )));
    }

    let mut ticker = (!plan.interval.is_zero()).then(|| {
        let mut ticker = tokio::time::interval(plan.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker
    });
    for tick in 0..plan.ticks {
        if let Some(ticker) = ticker.as_mut() {
            ticker.tick().await;
        }
        // A send fails only if a worker stopped early; it reports its own error.
        match plan.mode {
            PublishMode::RoundRobin => {
                let _ = jobs[tick % jobs.len()].send(());
            }
            PublishMode::All => {
                for job in &jobs {
                    let _ = job.send(());
                }
            }
        }
    }
    drop(jobs);

    let mut outcome = Outcome {
        published: Vec::new(),
        errors: 0,
        first_error: None,
        round_trip_us: Summary::default(),
        elapsed: Duration::ZERO,
    };
    for worker in workers {
        let (published, errors, first_error) = match worker.await {
            Ok(result) => result,
            Err(error) => (0, 1, Some(format!("publisher task failed: {error}"))),
        };
        outcome.published.push(published);
        outcome.errors += errors;
        if outcome.first_error.is_none() {
            outcome.first_error = first_error;
        }
    }
    outcome.elapsed = started.elapsed();
    outcome.round_trip_us = round_trip.summary();
    outcome
}

/// Sends one room's commands in order. Returns (published, errors, first error).
async fn room_worker(
    shared: Arc<Shared>,
    room_index: usize,
    mut jobs: mpsc::UnboundedReceiver<()>,
    round_trip: Arc<Histogram>,
) -> (u64, u64, Option<String>) {
    let room = &shared.rooms[room_index];
    let base = room.base.load(Ordering::Acquire);
    // Until told otherwise, listeners expect nothing past the base.
    room.last.store(base, Ordering::Release);
    let mut client = Client::new(shared.addrs[room_index % shared.addrs.len()]);
    // Open the connection before the first tick, so no command pays for it.
    if let Err(error) = warm_up(&mut client, shared.target).await {
        return (0, 1, Some(format!("publisher for {}: {error}", room.id)));
    }
    let (path, target) = match (shared.target, shared.command) {
        (Target::Syncroom, CommandKind::Seek) => {
            (format!("/api/rooms/{}/commands", room.id), Target::Syncroom)
        }
        (Target::Syncroom, CommandKind::Chat) => {
            (format!("/api/rooms/{}/chat", room.id), Target::Syncroom)
        }
        (Target::Nchan, _) => (format!("/pub/{}", room.id), Target::Nchan),
    };
    let (mut published, mut errors, mut first_error) = (0u64, 0u64, None);
    let mut fail = |why: String, errors: &mut u64| {
        *errors += 1;
        first_error.get_or_insert(why);
    };
    while jobs.recv().await.is_some() {
        let id = base + published + 1;
        let Some(slot) = room.sent_at.get(published as usize) else {
            fail(
                format!("{}: more commands than planned", room.id),
                &mut errors,
            );
            continue;
        };
        let body = command_body(target, shared.command, id, wall_clock_ms());
        let mut sent = Instant::now();
        let mut stamp = || {
            sent = Instant::now();
            slot.store(shared.now_ns(), Ordering::Release);
        };
        let answer = client.request("POST", &path, Some(&body), &mut stamp).await;
        round_trip.record(sent.elapsed().as_micros() as u64);
        match answer {
            Err(error) => fail(format!("{}: command {id}: {error}", room.id), &mut errors),
            Ok(response) => match check_answer(target, id, response.status, &response.body) {
                Ok(()) => published += 1,
                Err(why) => fail(format!("{}: command {id}: {why}", room.id), &mut errors),
            },
        }
    }
    room.last.store(base + published, Ordering::Release);
    (published, errors, first_error)
}

/// Opens the keep-alive connection with a harmless request.
async fn warm_up(client: &mut Client, target: Target) -> io::Result<()> {
    let path = match target {
        Target::Syncroom => "/healthz",
        // Any answer will do: it only proves the connection is open.
        Target::Nchan => "/",
    };
    client
        .request("GET", path, None, &mut || {})
        .await
        .map(drop)
}

/// A chat message of ordinary length.
const CHAT_TEXT: &str = "that drop at the chorus, every single time";

/// The command for id `id`. syncroom: a seek to a position unique to the id, so
/// every command changes the state and emits exactly one event, or a chat
/// message (one `chat` event). nchan: the same JSON the syncroom event carries,
/// with the id as its `version`.
pub fn command_body(target: Target, kind: CommandKind, id: u64, now_ms: u64) -> Vec<u8> {
    let position = id as f64 + 0.5;
    match (target, kind) {
        (Target::Syncroom, CommandKind::Seek) => {
            format!(r#"{{"type":"seek","position":{position}}}"#)
        }
        (Target::Syncroom, CommandKind::Chat) => {
            format!(r#"{{"name":"bench","text":"{id}: {CHAT_TEXT}"}}"#)
        }
        (Target::Nchan, CommandKind::Seek) => format!(
            r#"{{"version":{id},"cause":"seek","state":{{"video_id":null,"position":{position},"paused":true,"rate":1.0,"duration":null,"updated_at":{now_ms}}},"server_time":{now_ms}}}"#
        ),
        (Target::Nchan, CommandKind::Chat) => format!(
            r#"{{"version":{id},"name":"bench","text":"{id}: {CHAT_TEXT}","server_time":{now_ms}}}"#
        ),
    }
    .into_bytes()
}

fn check_answer(target: Target, id: u64, status: u16, body: &[u8]) -> Result<(), String> {
    let text = || String::from_utf8_lossy(body).trim().to_owned();
    match target {
        Target::Syncroom => {
            if status == 429 {
                return Err(format!(
                    "HTTP 429: {} (the server limits commands and chat per client address: raise its --commands-per-minute and --commands-burst, or --chat-per-minute and --chat-burst)",
                    text()
                ));
            }
            if status != 200 {
                return Err(format!("HTTP {status}: {}", text()));
            }
            let answer: serde_json::Value =
                serde_json::from_slice(body).map_err(|e| format!("answer not JSON: {e}"))?;
            match answer.get("version").and_then(serde_json::Value::as_u64) {
                Some(version) if version == id => Ok(()),
                Some(version) => Err(format!(
                    "the room is at version {version}, not {id}: is someone else commanding it?"
                )),
                None => Err(format!("answer without a version: {}", text())),
            }
        }
        Target::Nchan if (200..300).contains(&status) => Ok(()),
        Target::Nchan => Err(format!("HTTP {status}: {}", text())),
    }
}

pub fn wall_clock_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Creates the rooms (open control, so commands need no token); an existing room
/// is reused. Returns nothing for nchan, whose channels exist on first use.
pub async fn create_rooms(addr: SocketAddr, target: Target, ids: &[&str]) -> Result<(), String> {
    if target == Target::Nchan {
        return Ok(());
    }
    let mut client = Client::new(addr);
    for id in ids {
        let body = format!(r#"{{"room_id":"{id}","control":"open"}}"#);
        let response = client
            .request("POST", "/api/rooms", Some(body.as_bytes()), &mut || {})
            .await
            .map_err(|e| format!("creating room {id} at {addr}: {e}"))?;
        match response.status {
            201 | 409 => {}
            status => {
                return Err(format!(
                    "creating room {id}: HTTP {status}: {}",
                    response.text()
                ))
            }
        }
    }
    Ok(())
}

/// Each room's current version (syncroom), the base its events count from.
pub async fn room_versions(addr: SocketAddr, ids: &[&str]) -> Result<Vec<u64>, String> {
    let mut client = Client::new(addr);
    let mut versions = Vec::with_capacity(ids.len());
    for id in ids {
        let response = client
            .request("GET", &format!("/api/rooms/{id}"), None, &mut || {})
            .await
            .map_err(|e| format!("reading room {id}: {e}"))?;
        if response.status != 200 {
            return Err(format!(
                "reading room {id}: HTTP {}: {}",
                response.status,
                response.text()
            ));
        }
        let room: serde_json::Value = serde_json::from_slice(&response.body)
            .map_err(|e| format!("room {id} is not JSON: {e}"))?;
        let version = room
            .get("version")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| format!("room {id} has no version: {}", response.text()))?;
        let control = room.get("control").and_then(serde_json::Value::as_str);
        if control != Some("open") {
            return Err(format!(
                "room {id} exists with control {control:?}; use another --room-prefix"
            ));
        }
        versions.push(version);
    }
    Ok(versions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nchan_bodies_carry_their_id_where_the_parser_finds_it() {
        let body = command_body(Target::Nchan, CommandKind::Seek, 42, 1_763_800_000_123);
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["version"], 42);
        assert_eq!(crate::sse::version_in(&body), Some(42));
        let seek: serde_json::Value =
            serde_json::from_slice(&command_body(Target::Syncroom, CommandKind::Seek, 7, 0))
                .unwrap();
        assert_eq!(seek["position"], 7.5);
        let chat = command_body(Target::Nchan, CommandKind::Chat, 9, 0);
        assert_eq!(crate::sse::version_in(&chat), Some(9));
    }

    #[test]
    fn a_syncroom_answer_must_carry_the_expected_version() {
        assert!(check_answer(Target::Syncroom, 5, 200, br#"{"version":5}"#).is_ok());
        assert!(check_answer(Target::Syncroom, 5, 200, br#"{"version":6}"#).is_err());
        assert!(check_answer(Target::Syncroom, 5, 409, b"{}").is_err());
        assert!(check_answer(Target::Syncroom, 5, 200, b"not json").is_err());
        assert!(check_answer(Target::Nchan, 5, 201, b"queued messages: 1").is_ok());
    }
}
