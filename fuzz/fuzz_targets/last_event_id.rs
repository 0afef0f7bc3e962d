//! Where an event stream resumes: the `Last-Event-ID` header and the query string
//! of `GET /api/rooms/{room_id}/events`, read as the handler reads them.
//!
//! The input is `header \n query`: the bytes before the first newline are the
//! header's value (a header value never holds a newline), the rest is the query
//! string. With no newline there is no header and all of it is the query string.
#![no_main]

use axum::extract::Query;
use axum::http::{HeaderValue, Uri};
use libfuzzer_sys::fuzz_target;
use syncroom::http::events::{resume_from, EventsQuery};

fuzz_target!(|data: &[u8]| {
    let (header, query) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (Some(&data[..at]), &data[at + 1..]),
        None => (None, data),
    };
    // A header hyper would not have accepted never reaches the handler.
    let header = match header.map(HeaderValue::from_bytes) {
        Some(Ok(value)) => Some(value),
        Some(Err(_)) => return,
        None => None,
    };

    // The query parameter on its own, then as the handler's extractor reads it.
    let raw = std::str::from_utf8(query).ok();
    check(header.as_ref(), raw);
    let Some(query) = raw else {
        return;
    };
    let Ok(uri) = format!("/api/rooms/r/events?{query}").parse::<Uri>() else {
        return;
    };
    if let Ok(Query(parsed)) = Query::<EventsQuery>::try_from_uri(&uri) {
        check(header.as_ref(), parsed.last_event_id.as_deref());
        // A parameter written back as a query string reads back the same.
        if let Some(id) = &parsed.last_event_id {
            let written = serde_urlencoded::to_string([("last_event_id", id)]).unwrap();
            let uri: Uri = format!("/api/rooms/r/events?{written}")
                .parse()
                .expect("an encoded query string makes a URI");
            let Query(again) = Query::<EventsQuery>::try_from_uri(&uri).expect("re-read");
            assert_eq!(again.last_event_id.as_deref(), Some(id.as_str()));
        }
    }
});

/// `resume_from` resumes exactly from ids written as the server writes them: the
/// header when it is text, else the query parameter; surrounding white space
/// allowed; only decimal digits that fit a u64.
fn check(header: Option<&HeaderValue>, query: Option<&str>) {
    let resumed = resume_from(header, query);
    let source = header.and_then(|v| v.to_str().ok()).or(query);
    let expected = source.map(str::trim).and_then(|id| {
        let digits = !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit());
        digits.then(|| id.parse::<u64>().ok()).flatten()
    });
    assert_eq!(resumed, expected, "header {header:?}, query {query:?}");
    if let (Some(n), Some(id)) = (resumed, source) {
        assert_eq!(
            id.trim()
                .trim_start_matches('0')
                .parse::<u64>()
                .unwrap_or(0),
            n
        );
    }
}
