//! `syncroom-bench`: a load tool for SSE fan-out, for syncroom and for nginx+nchan
//! driven the same way.
//!
//! A run: create the rooms, open N listeners over R rooms (listener i joins room
//! i mod R, from source address 127.0.0.(2 + i mod S)), wait for every snapshot,
//! publish commands at an interval, wait until every listener has every event,
//! and report latency (command sent → event read, one monotonic clock in this
//! process), lost and duplicated deliveries (ids must be consecutive per listener),
//! connect rate, server RSS per listener and server CPU per delivery (from /proc),
//! and the tool's own CPU.
//!
//! Modules: [`listener`] (one task per connection), [`publish`] (its own thread),
//! [`http`] and [`sse`] (hand-written parsers), [`stats`], [`sys`] (/proc, rlimits),
//! [`redis`] (a shared Redis's command count).
//!
//! Exit status: 0 when every listener got every event exactly once; 1 when any
//! delivery was lost, duplicated or unexpected, or a stream ended early; 2 when the
//! run could not be made (bad arguments, connect or publish failures).

mod http;
mod listener;
mod publish;
mod redis;
mod sse;
mod stats;
mod sys;

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use serde_json::json;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::listener::{Room, Shared};
use crate::stats::{Counters, Histogram, Summary};
use crate::sys::CpuTime;

/// Listeners per source address when --source-ips is not given: under syncroom's
/// default per-address stream limit (100), with room to spare.
const LISTENERS_PER_SOURCE_IP: usize = 64;

/// Which server is driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Target {
    /// syncroom: rooms at /api/rooms, events at /api/rooms/{id}/events, seek commands.
    Syncroom,
    /// nginx + nchan (bench/nchan/run.sh): POST /pub/{room}, GET /sub/{room} as EventSource.
    Nchan,
}

/// What each published command is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CommandKind {
    /// A seek (syncroom: `POST /commands`, one `state` event).
    Seek,
    /// A chat message (syncroom: `POST /chat`, one `chat` event).
    Chat,
}

/// How commands are spread over rooms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PublishMode {
    /// One command per tick, to the rooms in turn (tick t goes to room t mod R).
    RoundRobin,
    /// One command per tick to every room (R commands per tick).
    All,
}

/// Load tool for syncroom and nginx+nchan: SSE fan-out latency, lost and
/// duplicated deliveries, connect rate, server memory and CPU per listener.
#[derive(Debug, Parser)]
#[command(name = "syncroom-bench", version, about)]
struct Args {
    /// Server to drive.
    #[arg(long, value_enum, default_value = "syncroom")]
    target: Target,
    /// Server address [default: 127.0.0.1:8080 for syncroom, 127.0.0.1:8090 for nchan].
    /// Several, comma-separated, for syncroom nodes sharing rooms through Redis:
    /// listener i connects to the (i mod K)th, room r's commands go to the
    /// (r mod K)th, rooms are created on the first.
    #[arg(long, value_delimiter = ',')]
    addr: Vec<SocketAddr>,
    /// What each command is.
    #[arg(long, value_enum, default_value = "seek")]
    command: CommandKind,
    /// A Redis server the nodes share: its CPU and the commands it processed
    /// (INFO `total_commands_processed`) are reported over the publish phase.
    #[arg(long)]
    redis: Option<SocketAddr>,
    /// Listeners to open (N).
    #[arg(short = 'n', long, default_value_t = 1000)]
    listeners: usize,
    /// Rooms (R); listener i joins room i mod R.
    #[arg(short = 'r', long, default_value_t = 1)]
    rooms: usize,
    /// Publish ticks (M); see --publish for how many commands a tick sends.
    #[arg(short = 'm', long, default_value_t = 50)]
    events: usize,
    /// Time between ticks in milliseconds; 0 sends every command at once (each
    /// room's commands still go one after another).
    #[arg(long, default_value_t = 20.0)]
    interval_ms: f64,
    /// How each tick spreads over rooms.
    #[arg(long, value_enum, default_value = "round-robin")]
    publish: PublishMode,
    /// Room ids are this prefix and a number: b0, b1, … (an existing open-control
    /// syncroom room is reused).
    #[arg(long, default_value = "b")]
    room_prefix: String,
    /// Spread listeners over this many source addresses 127.0.0.2, 127.0.0.3, …
    /// (each brings ~28k ports, and the server counts streams per address);
    /// 0 lets the kernel pick (127.0.0.1 only). Default: enough for at most
    /// 64 listeners per address (syncroom's --max-streams-per-client is 100),
    /// at least 8, at most 250.
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=250))]
    source_ips: Option<u8>,
    /// Connects and subscriptions in flight at once.
    #[arg(long, default_value_t = 256)]
    connect_concurrency: usize,
    /// Give up when not every listener has its snapshot after this many seconds.
    #[arg(long, default_value_t = 120.0)]
    connect_timeout_s: f64,
    /// After the last command, wait at most this many seconds for every delivery.
    #[arg(long, default_value_t = 10.0)]
    drain_timeout_s: f64,
    /// Pause after the last snapshot before reading the server's RSS and
    /// starting the measured publish phase (ms): connect-time work (presence
    /// events of the joins) falls before it.
    #[arg(long, default_value_t = 500)]
    settle_ms: u64,
    /// After every delivery arrived, keep reading this long to catch duplicates (ms).
    #[arg(long, default_value_t = 200)]
    linger_ms: u64,
    /// Listener runtime threads: 1 is a current-thread runtime (the leanest).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Read buffer per listener in bytes (a response head must fit in it).
    #[arg(long, default_value_t = 2048)]
    read_buffer: usize,
    /// Server process ids to measure (comma-separated; nginx: master and worker).
    /// By default, the processes holding the listening socket on the port of --addr.
    #[arg(long, value_delimiter = ',')]
    server_pid: Vec<u32>,
    /// Print one JSON object instead of the human summary.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(problem) = check(&args) {
        eprintln!("syncroom-bench: {problem}");
        return ExitCode::from(2);
    }
    let nofile = match sys::raise_nofile_limit() {
        Ok(limit) => limit,
        Err(error) => {
            eprintln!("syncroom-bench: cannot read the open-file limit: {error}");
            return ExitCode::from(2);
        }
    };
    let needed = (args.listeners + args.rooms + 64) as u64;
    if needed > nofile {
        eprintln!(
            "syncroom-bench: {} listeners need about {needed} open files; the limit is {nofile} (ulimit -Hn)",
            args.listeners
        );
        return ExitCode::from(2);
    }
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("syncroom-bench: cannot start the runtime: {error}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(report) => {
            if args.json {
                println!("{}", report.json());
            } else {
                report.print();
            }
            if report.clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(problem) => {
            eprintln!("syncroom-bench: {problem}");
            ExitCode::from(2)
        }
    }
}

fn check(args: &Args) -> Result<(), String> {
    if args.listeners == 0 || args.rooms == 0 {
        return Err("--listeners and --rooms must be at least 1".into());
    }
    if !(args.interval_ms.is_finite() && args.interval_ms >= 0.0) {
        return Err("--interval-ms must be a non-negative number".into());
    }
    if args.read_buffer < 256 {
        return Err("--read-buffer must be at least 256 bytes".into());
    }
    if args.connect_concurrency == 0 {
        return Err("--connect-concurrency must be at least 1".into());
    }
    let valid = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if args.room_prefix.is_empty() || !args.room_prefix.chars().all(valid) {
        return Err("--room-prefix must match [A-Za-z0-9_-]+".into());
    }
    Ok(())
}

async fn run(args: &Args) -> Result<Report, String> {
    let addrs = if args.addr.is_empty() {
        vec![match args.target {
            Target::Syncroom => SocketAddr::from(([127, 0, 0, 1], 8080)),
            Target::Nchan => SocketAddr::from(([127, 0, 0, 1], 8090)),
        }]
    } else {
        args.addr.clone()
    };
    let addr = addrs[0];
    let room_ids: Vec<String> = (0..args.rooms)
        .map(|r| format!("{}{r}", args.room_prefix))
        .collect();
    let id_refs: Vec<&str> = room_ids.iter().map(String::as_str).collect();
    publish::create_rooms(addr, args.target, &id_refs).await?;

    let pids = if args.server_pid.is_empty() {
        let mut pids: Vec<u32> = addrs
            .iter()
            .flat_map(|addr| sys::pids_listening_on(addr.port()))
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    } else {
        args.server_pid.clone()
    };
    let source_ips = args.source_ips.unwrap_or_else(|| {
        let wanted = args.listeners.div_ceil(LISTENERS_PER_SOURCE_IP);
        wanted.clamp(8, 250) as u8
    });
    let per_room_commands = match args.publish {
        PublishMode::RoundRobin => args.events.div_ceil(args.rooms),
        PublishMode::All => args.events,
    };
    let shared = Arc::new(Shared {
        target: args.target,
        addrs: addrs.clone(),
        command: args.command,
        rooms: room_ids
            .iter()
            .map(|id| Room::new(id.clone(), per_room_commands))
            .collect(),
        sources: (0..source_ips)
            .map(|i| Ipv4Addr::new(127, 0, 0, 2 + i))
            .collect(),
        read_buffer: args.read_buffer,
        connecting: Semaphore::new(args.connect_concurrency),
        epoch: Instant::now(),
        latency_us: Histogram::new(),
        subscribe_us: Histogram::new(),
        counters: Counters::default(),
    });

    // Connect phase.
    let rss_before = sys::procs_rss_kib(&pids);
    let server_at_start = sys::procs_cpu(&pids);
    let tool_at_start = sys::own_cpu();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let connect_started = Instant::now();
    for index in 0..args.listeners {
        tasks.spawn(listener::run(shared.clone(), index, stop_rx.clone()));
    }
    let counters = &shared.counters;
    let connect_deadline = connect_started + Duration::from_secs_f64(args.connect_timeout_s);
    loop {
        let settled = Counters::get(&counters.ready) + Counters::get(&counters.failed);
        if settled >= args.listeners as u64 {
            break;
        }
        if Instant::now() > connect_deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let connect_elapsed = connect_started.elapsed();
    let server_connected = sys::procs_cpu(&pids);
    let tool_connected = sys::own_cpu();
    let ready = Counters::get(&counters.ready);
    if ready < args.listeners as u64 {
        let _ = stop_tx.send(true);
        tasks.abort_all();
        let failed = Counters::get(&counters.failed);
        return Err(format!(
            "only {ready} of {} listeners subscribed in {:.1} s ({failed} failed); first failure: {}",
            args.listeners,
            connect_elapsed.as_secs_f64(),
            counters.first_failure().unwrap_or_else(|| "none (timed out)".into())
        ));
    }
    tokio::time::sleep(Duration::from_millis(args.settle_ms)).await;
    let rss_after = sys::procs_rss_kib(&pids);
    // Joins whole: the connects and subscriptions, and what they caused while
    // settling (presence events).
    let server_joined = sys::procs_cpu(&pids);

    // Publish phase.
    match args.target {
        Target::Syncroom => {
            let versions = publish::room_versions(addr, &id_refs).await?;
            for (room, version) in shared.rooms.iter().zip(versions) {
                room.base
                    .store(version, std::sync::atomic::Ordering::Release);
            }
        }
        // Every nchan listener starts before message 1 of this run.
        Target::Nchan => {}
    }
    let redis_pids = args
        .redis
        .map(|redis| sys::pids_listening_on(redis.port()))
        .unwrap_or_default();
    let redis_at_publish = match args.redis {
        Some(redis) => Some(redis::commands_processed(redis).await?),
        None => None,
    };
    let redis_cpu_at_publish = sys::procs_cpu(&redis_pids);
    let server_at_publish = sys::procs_cpu(&pids);
    let tool_at_publish = sys::own_cpu();
    let publish_started = Instant::now();
    let plan = publish::Plan {
        ticks: args.events,
        interval: Duration::from_secs_f64(args.interval_ms / 1000.0),
        mode: args.publish,
    };
    let outcome = publish::spawn(shared.clone(), plan)
        .map_err(|e| format!("cannot start the publisher: {e}"))?
        .await
        .map_err(|_| "the publisher thread died".to_string())?;
    let listeners_in = |room: usize| (room..args.listeners).step_by(args.rooms).count() as u64;
    let expected: u64 = outcome
        .published
        .iter()
        .enumerate()
        .map(|(room, published)| published * listeners_in(room))
        .sum();
    let drain_deadline = Instant::now() + Duration::from_secs_f64(args.drain_timeout_s);
    while Counters::get(&counters.delivered) < expected && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let delivery_elapsed = publish_started.elapsed();
    let server_delivered = sys::procs_cpu(&pids);
    let tool_delivered = sys::own_cpu();
    let redis_cpu_delivered = sys::procs_cpu(&redis_pids);
    let redis_commands = match (args.redis, redis_at_publish) {
        // The INFO asked for here is one command more than the window saw.
        (Some(redis), Some(before)) => Some(
            redis::commands_processed(redis)
                .await?
                .saturating_sub(before + 1),
        ),
        _ => None,
    };
    let drained = Counters::get(&counters.delivered) >= expected;

    // Late duplicates would arrive now; then every listener counts what it missed.
    tokio::time::sleep(Duration::from_millis(args.linger_ms)).await;
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}

    if outcome.errors > 0 {
        return Err(format!(
            "{} commands failed; first: {}",
            outcome.errors,
            outcome.first_error.unwrap_or_default()
        ));
    }
    let cpu_delta = |later: Option<CpuTime>, earlier: Option<CpuTime>| Some(later?.since(earlier?));
    Ok(Report {
        target: args.target,
        addrs,
        command: args.command,
        listeners: args.listeners,
        rooms: args.rooms,
        ticks: args.events,
        interval_ms: args.interval_ms,
        mode: args.publish,
        threads: args.threads.max(1),
        source_ips,
        pids,
        connect_elapsed,
        server_connect_cpu: cpu_delta(server_connected, server_at_start),
        server_join_cpu: cpu_delta(server_joined, server_at_start),
        tool_connect_cpu: tool_connected.since(tool_at_start),
        rss_before_kib: rss_before,
        rss_after_kib: rss_after,
        commands: outcome.published.iter().sum(),
        publish_elapsed: outcome.elapsed,
        round_trip_us: outcome.round_trip_us,
        expected,
        drained,
        delivery_elapsed,
        server_publish_cpu: cpu_delta(server_delivered, server_at_publish),
        redis_publish_cpu: cpu_delta(redis_cpu_delivered, redis_cpu_at_publish),
        redis_commands,
        settle_ms: args.settle_ms,
        tool_publish_cpu: tool_delivered.since(tool_at_publish),
        latency_us: shared.latency_us.summary(),
        subscribe_us: shared.subscribe_us.summary(),
        delivered: Counters::get(&counters.delivered),
        lost: Counters::get(&counters.lost),
        duplicated: Counters::get(&counters.duplicated),
        unexpected: Counters::get(&counters.unexpected),
        resyncs: Counters::get(&counters.resyncs),
        disconnects: Counters::get(&counters.disconnects),
        first_disconnect: counters.first_disconnect(),
        unmatched: Counters::get(&counters.unmatched),
        other: Counters::get(&counters.other),
        bytes: Counters::get(&counters.bytes),
    })
}

/// Everything measured in one run.
struct Report {
    target: Target,
    addrs: Vec<SocketAddr>,
    command: CommandKind,
    listeners: usize,
    rooms: usize,
    ticks: usize,
    interval_ms: f64,
    mode: PublishMode,
    threads: usize,
    source_ips: u8,
    pids: Vec<u32>,
    connect_elapsed: Duration,
    server_connect_cpu: Option<CpuTime>,
    /// From the first connect to the end of the settling pause.
    server_join_cpu: Option<CpuTime>,
    tool_connect_cpu: CpuTime,
    rss_before_kib: Option<u64>,
    rss_after_kib: Option<u64>,
    commands: u64,
    publish_elapsed: Duration,
    round_trip_us: Summary,
    expected: u64,
    drained: bool,
    delivery_elapsed: Duration,
    server_publish_cpu: Option<CpuTime>,
    redis_publish_cpu: Option<CpuTime>,
    /// Commands Redis processed over the publish phase.
    redis_commands: Option<u64>,
    settle_ms: u64,
    tool_publish_cpu: CpuTime,
    latency_us: Summary,
    subscribe_us: Summary,
    delivered: u64,
    lost: u64,
    duplicated: u64,
    unexpected: u64,
    resyncs: u64,
    disconnects: u64,
    first_disconnect: Option<String>,
    unmatched: u64,
    other: u64,
    bytes: u64,
}

impl Report {
    /// Every listener got every event exactly once.
    fn clean(&self) -> bool {
        self.lost == 0
            && self.duplicated == 0
            && self.unexpected == 0
            && self.disconnects == 0
            && self.drained
    }

    fn target_name(&self) -> &'static str {
        match self.target {
            Target::Syncroom => "syncroom",
            Target::Nchan => "nchan",
        }
    }

    fn mode_name(&self) -> &'static str {
        match self.mode {
            PublishMode::RoundRobin => "round-robin",
            PublishMode::All => "all",
        }
    }

    fn connect_rate(&self) -> f64 {
        self.listeners as f64 / self.connect_elapsed.as_secs_f64().max(1e-9)
    }

    /// Server RSS growth per listener, in bytes.
    fn rss_per_listener(&self) -> Option<f64> {
        let (before, after) = (self.rss_before_kib?, self.rss_after_kib?);
        Some((after as f64 - before as f64) * 1024.0 / self.listeners as f64)
    }

    fn per_delivery(&self, cpu: CpuTime) -> (f64, f64, f64) {
        let n = self.delivered.max(1) as f64;
        (
            cpu.total_us() as f64 / n,
            cpu.user_us as f64 / n,
            cpu.sys_us as f64 / n,
        )
    }

    fn json(&self) -> serde_json::Value {
        let latency = |s: &Summary| {
            json!({"count": s.count, "min": s.min, "mean": round2(s.mean), "p50": s.p50,
                   "p90": s.p90, "p99": s.p99, "p999": s.p999, "max": s.max})
        };
        let cpu = |c: Option<CpuTime>| {
            c.map(|c| json!({"user_us": c.user_us, "sys_us": c.sys_us, "total_us": c.total_us()}))
        };
        let server_per_delivery = self.server_publish_cpu.map(|c| {
            let (total, user, sys) = self.per_delivery(c);
            json!({"total": round2(total), "user": round2(user), "sys": round2(sys)})
        });
        let (tool_total, tool_user, tool_sys) = self.per_delivery(self.tool_publish_cpu);
        json!({
            "target": self.target_name(),
            "addr": self.addrs.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
            "command": match self.command { CommandKind::Seek => "seek", CommandKind::Chat => "chat" },
            "listeners": self.listeners,
            "rooms": self.rooms,
            "ticks": self.ticks,
            "interval_ms": self.interval_ms,
            "publish_mode": self.mode_name(),
            "commands": self.commands,
            "ok": self.clean(),
            "deliveries": {
                "expected": self.expected,
                "delivered": self.delivered,
                "lost": self.lost,
                "duplicated": self.duplicated,
                "unexpected": self.unexpected,
                "resyncs": self.resyncs,
                "disconnects": self.disconnects,
                "first_disconnect": self.first_disconnect,
                "unmatched": self.unmatched,
                "other_messages": self.other,
                "bytes_read": self.bytes,
                "all_arrived": self.drained,
            },
            "latency_us": latency(&self.latency_us),
            "command_round_trip_us": latency(&self.round_trip_us),
            "connect": {
                "seconds": round3(self.connect_elapsed.as_secs_f64()),
                "listeners_per_s": self.connect_rate().round(),
                "subscribe_us": latency(&self.subscribe_us),
                "server_cpu": cpu(self.server_connect_cpu),
                "server_cpu_through_settle": cpu(self.server_join_cpu),
                "server_cpu_us_per_join": self.server_join_cpu
                    .map(|c| round2(c.total_us() as f64 / self.listeners as f64)),
                "settle_ms": self.settle_ms,
                "tool_cpu": cpu(Some(self.tool_connect_cpu)),
            },
            "publish": {
                "seconds": round3(self.publish_elapsed.as_secs_f64()),
                "until_all_delivered_s": round3(self.delivery_elapsed.as_secs_f64()),
                "deliveries_per_s": (self.delivered as f64 / self.delivery_elapsed.as_secs_f64().max(1e-9)).round(),
            },
            "server": {
                "pids": self.pids,
                "rss_before_kib": self.rss_before_kib,
                "rss_after_kib": self.rss_after_kib,
                "rss_per_listener_bytes": self.rss_per_listener().map(f64::round),
                "publish_cpu": cpu(self.server_publish_cpu),
                "cpu_us_per_delivery": server_per_delivery,
                "cpu_us_per_command": self.server_publish_cpu
                    .map(|c| round2(c.total_us() as f64 / self.commands.max(1) as f64)),
            },
            "redis": self.redis_commands.map(|commands| json!({
                "publish_cpu": cpu(self.redis_publish_cpu),
                "cpu_us_per_command": self.redis_publish_cpu
                    .map(|c| round2(c.total_us() as f64 / self.commands.max(1) as f64)),
                "commands": commands,
                "commands_per_room_command": round2(commands as f64 / self.commands.max(1) as f64),
            })),
            "tool": {
                "threads": self.threads,
                "source_ips": self.source_ips,
                "publish_cpu": cpu(Some(self.tool_publish_cpu)),
                "cpu_us_per_delivery": {"total": round2(tool_total), "user": round2(tool_user), "sys": round2(tool_sys)},
            },
        })
    }

    fn print(&self) {
        let ms = |us: u64| us as f64 / 1000.0;
        let l = &self.latency_us;
        let per_tick = match self.mode {
            PublishMode::RoundRobin => "one command per tick, rooms in turn",
            PublishMode::All => "one command per room per tick",
        };
        println!(
            "{} at {}: {} listeners over {} room(s), {} ticks every {} ms ({per_tick})",
            self.target_name(),
            self.addrs[0],
            self.listeners,
            self.rooms,
            self.ticks,
            self.interval_ms
        );
        let server_connect = self
            .server_connect_cpu
            .map(|c| {
                format!(
                    "; server {:.1} µs CPU per listener",
                    c.total_us() as f64 / self.listeners as f64
                )
            })
            .unwrap_or_default();
        let s = &self.subscribe_us;
        println!(
            "connect     {} listeners in {:.2} s = {:.0}/s{server_connect}; connect to snapshot p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            self.listeners,
            self.connect_elapsed.as_secs_f64(),
            self.connect_rate(),
            ms(s.p50),
            ms(s.p99),
            ms(s.max)
        );
        match (
            self.rss_before_kib,
            self.rss_after_kib,
            self.rss_per_listener(),
        ) {
            (Some(before), Some(after), Some(per)) => println!(
                "memory      server RSS {:.1} MiB -> {:.1} MiB: {:.2} KiB per listener",
                before as f64 / 1024.0,
                after as f64 / 1024.0,
                per / 1024.0
            ),
            _ => println!("memory      server process not found (give --server-pid)"),
        }
        println!(
            "publish     {} commands in {:.2} s; command round trip p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            self.commands,
            self.publish_elapsed.as_secs_f64(),
            ms(self.round_trip_us.p50),
            ms(self.round_trip_us.p99),
            ms(self.round_trip_us.max)
        );
        println!(
            "latency     p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  max {:.2} ms  (mean {:.2} ms, {} samples)",
            ms(l.p50),
            ms(l.p90),
            ms(l.p99),
            ms(l.p999),
            ms(l.max),
            l.mean / 1000.0,
            l.count
        );
        println!(
            "deliveries  {} of {} expected in {:.2} s ({:.0}/s); lost {}, duplicated {}, unexpected {}, resyncs {}, disconnects {}",
            self.delivered,
            self.expected,
            self.delivery_elapsed.as_secs_f64(),
            self.delivered as f64 / self.delivery_elapsed.as_secs_f64().max(1e-9),
            self.lost,
            self.duplicated,
            self.unexpected,
            self.resyncs,
            self.disconnects
        );
        if let Some(why) = &self.first_disconnect {
            println!("            first disconnect: {why}");
        }
        if let Some(cpu) = self.server_publish_cpu {
            let (total, user, sys) = self.per_delivery(cpu);
            println!(
                "server CPU  {total:.2} µs per delivery (user {user:.2}, sys {sys:.2}) over the publish phase; pids {:?}",
                self.pids
            );
        }
        if let (Some(commands), Some(cpu)) = (self.redis_commands, self.redis_publish_cpu) {
            let per_command = |n: f64| n / self.commands.max(1) as f64;
            println!(
                "redis       {commands} commands ({:.2} per room command), {:.2} µs CPU per room command",
                per_command(commands as f64),
                per_command(cpu.total_us() as f64)
            );
        }
        if let Some(cpu) = self.server_join_cpu {
            println!(
                "joins       server {:.1} µs CPU per join, from the first connect to {} ms after the last (snapshots and presence included)",
                cpu.total_us() as f64 / self.listeners as f64,
                self.settle_ms
            );
        }
        let (total, user, sys) = self.per_delivery(self.tool_publish_cpu);
        println!(
            "tool CPU    {total:.2} µs per delivery (user {user:.2}, sys {sys:.2}); {} listener thread(s)",
            self.threads
        );
        println!("{}", self.line());
    }

    /// One line to paste into a table.
    fn line(&self) -> String {
        let ms = |us: u64| us as f64 / 1000.0;
        let l = &self.latency_us;
        let rss = self
            .rss_per_listener()
            .map_or("?".into(), |b| format!("{:.2}KiB", b / 1024.0));
        let cpu = self
            .server_publish_cpu
            .map_or("?".into(), |c| format!("{:.2}µs", self.per_delivery(c).0));
        format!(
            "RESULT {} {}x{} {}@{}ms/{}: p50={:.2}ms p90={:.2}ms p99={:.2}ms max={:.2}ms lost={} dup={} connect={:.0}/s rss/listener={rss} server_cpu/delivery={cpu} tool_cpu/delivery={:.2}µs",
            self.target_name(),
            self.rooms,
            self.listeners,
            self.ticks,
            self.interval_ms,
            self.mode_name(),
            ms(l.p50),
            ms(l.p90),
            ms(l.p99),
            ms(l.max),
            self.lost,
            self.duplicated,
            self.connect_rate(),
            self.per_delivery(self.tool_publish_cpu).0
        )
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
