//! Criterion benches of the per-command work that is not I/O, stage by stage as
//! a command goes through the server (`stage 1` … `stage 6`: request parse, JSON
//! decode, the actor hop, apply, encode, the reply), then whole: a command
//! through the room's handle, and through the router (everything but the
//! socket). Also the variants: a larger queue, a snapshot frame.
//! Run with `cargo bench --bench hot_path`; BENCHMARKS.md keeps the figures.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use clap::Parser;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use std::hint::black_box;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use syncroom::actor::handle::CommandReply;
use syncroom::actor::RoomHandle;
use syncroom::http::AppState;
use syncroom::registry::CreateRoom;
use syncroom::room::command::CommandRequest;
use syncroom::room::event::Frame;
use syncroom::room::{Command, Control, GateSettings, Inputs, Room, Source};

const T0: i64 = 1_763_800_000_000;

fn room_with_queue(items: usize) -> Room {
    let mut room = Room::new(
        "bench".into(),
        "bench".into(),
        Control::Open,
        Some(Source::Video("dQw4w9WgXcQ".into())),
        "token",
        1000,
        T0,
    );
    for i in 0..items {
        room.apply(
            Command::add(
                Source::Video("9bZkp7q19f0".into()),
                Some(format!("Song number {i} — a title of ordinary length")),
            ),
            &Inputs::at(T0),
        )
        .expect("queue_add applies");
    }
    room
}

fn apply(c: &mut Criterion) {
    c.bench_function("apply queue_add + queue_remove (queue of 50)", |b| {
        b.iter_batched(
            || room_with_queue(50),
            |mut room| {
                room.apply(
                    Command::add(Source::Video("dQw4w9WgXcQ".into()), None),
                    &Inputs::at(T0),
                )
                .expect("queue_add applies");
                room.apply(
                    Command::QueueRemove {
                        item_id: "q51".into(),
                    },
                    &Inputs::at(T0),
                )
                .expect("queue_remove applies")
            },
            BatchSize::SmallInput,
        )
    });
}

fn encode(c: &mut Criterion) {
    let view = room_with_queue(50).view(1000, T0, GateSettings::default());
    c.bench_function("encode snapshot frame (queue of 50)", |b| {
        b.iter(|| Frame::snapshot(black_box(&view)))
    });
}

/// The head of a command request as a browser sends it.
const COMMAND_HEAD: &[u8] = b"POST /api/rooms/bench/commands HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\nAccept: */*\r\n\
Content-Type: application/json\r\nOrigin: http://127.0.0.1:8080\r\nContent-Length: 31\r\n\r\n";
const SEEK_BODY: &[u8] = br#"{"type":"seek","position":42.5}"#;

/// A server's state with one open room, `bench`, on a runtime of its own.
fn server() -> (tokio::runtime::Runtime, Arc<AppState>, RoomHandle) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let config = syncroom::Config::try_parse_from([
        "syncroom",
        "--commands-per-minute",
        "1000000000",
        "--commands-burst",
        "1000000000",
    ])
    .expect("flags parse");
    let (app, handle) = runtime.block_on(async {
        let app = Arc::new(AppState::new(
            config,
            CancellationToken::new(),
            None,
            None,
            syncroom::metadata::Metadata::default(),
        ));
        app.registry
            .create(
                CreateRoom {
                    room_id: Some("bench".into()),
                    control: Some(Control::Open),
                    ..CreateRoom::default()
                },
                std::net::Ipv4Addr::LOCALHOST.into(),
            )
            .await
            .expect("room created");
        let handle = app.registry.get("bench").await.ok().flatten();
        (app, handle.expect("room open"))
    });
    (runtime, app, handle)
}

/// One command, stage by stage: what each costs on its own.
fn command_stages(c: &mut Criterion) {
    c.bench_function(
        "stage 1 request parse (httparse, the head hyper reads)",
        |b| {
            b.iter(|| {
                let mut headers = [httparse::EMPTY_HEADER; 32];
                let mut request = httparse::Request::new(&mut headers);
                request.parse(black_box(COMMAND_HEAD)).expect("parses");
                request.headers.len()
            })
        },
    );
    c.bench_function(
        "stage 2 JSON decode (body bytes to validated command)",
        |b| {
            b.iter(|| {
                let value = serde_json::from_slice(black_box(SEEK_BODY)).expect("JSON");
                Command::decode(value).expect("decodes and validates")
            })
        },
    );
    let (runtime, _app, handle) = server();
    c.bench_function(
        "stage 3 actor hop (a request into the room's inbox and its answer back)",
        |b| b.iter(|| runtime.block_on(handle.view()).expect("answered")),
    );
    c.bench_function("stage 4 apply seek", |b| {
        let mut room = room_with_queue(0);
        let mut position = 0.0;
        b.iter(|| {
            position = (position + 1.5) % 200.0;
            room.apply(black_box(Command::Seek { position }), &Inputs::at(T0))
                .expect("seek applies")
        })
    });
    let mut room = room_with_queue(0);
    let event = room
        .apply(Command::Seek { position: 42.5 }, &Inputs::at(T0))
        .expect("seek applies")
        .into_iter()
        .next()
        .expect("one event");
    c.bench_function("stage 5 encode the state frame", |b| {
        b.iter(|| black_box(&event).to_frame(None))
    });
    let reply = CommandReply {
        version: room.version,
        room: room.view(10, T0, GateSettings::default()),
        changed: true,
    };
    c.bench_function("stage 6 reply (the command's answer to JSON)", |b| {
        b.iter(|| serde_json::to_vec(black_box(&reply)).expect("encodes"))
    });
}

/// One command whole: through the handle (hop, apply, encode, publish to no
/// listener, the answer's room view), and through the router (plus the rate
/// limit, extractors, JSON decode, the answer's JSON; not the socket).
fn command_whole(c: &mut Criterion) {
    let (runtime, app, handle) = server();
    let mut position = 0.0;
    c.bench_function("whole command through the room handle", |b| {
        b.iter(|| {
            position = (position + 1.5) % 200.0;
            let request = CommandRequest {
                command: Command::Seek { position },
                expected_version: None,
            };
            runtime
                .block_on(handle.command(request, None, std::time::Instant::now()))
                .expect("applies")
        })
    });
    // The router starts its rate limiters' sweeper: inside the runtime.
    let router = {
        let _inside = runtime.enter();
        syncroom::http::router(app)
    };
    let peer: SocketAddr = ([127, 0, 0, 1], 40000).into();
    c.bench_function("whole command through the router (no socket)", |b| {
        b.iter(|| {
            let request = Request::post("/api/rooms/bench/commands")
                .header("content-type", "application/json")
                .extension(ConnectInfo(peer))
                .body(Body::from(SEEK_BODY))
                .expect("request");
            let response = runtime
                .block_on(router.clone().oneshot(request))
                .expect("infallible");
            assert!(response.status().is_success());
        })
    });
}

criterion_group!(benches, command_stages, command_whole, apply, encode);
criterion_main!(benches);
