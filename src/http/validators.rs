//! Conditional requests, shared by the embedded pages and the media files:
//! whether a request's `If-None-Match` names the answer's `ETag`.

use axum::http::{header, HeaderMap};

/// Whether `If-None-Match` (every such header, each a comma-separated list) names
/// `etag`, by weak comparison (RFC 9110 §13.1.2: `W/` is ignored on both sides);
/// `*` names any.
pub fn if_none_match_names(request: &HeaderMap, etag: &[u8]) -> bool {
    let ours = etag.strip_prefix(b"W/").unwrap_or(etag);
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .any(|candidate| {
            candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate).as_bytes() == ours
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(values: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(header::IF_NONE_MATCH, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn if_none_match_compares_weakly_in_lists_and_across_headers() {
        for (etag, sent, matches) in [
            ("W/\"abc\"", &["W/\"abc\""][..], true),
            ("W/\"abc\"", &["\"abc\""], true),
            ("W/\"abc\"", &["\"x\", W/\"abc\""], true),
            ("W/\"abc\"", &["*"], true),
            ("W/\"abc\"", &["W/\"abd\""], false),
            ("W/\"abc\"", &[], false),
            ("\"10-20\"", &["\"10-20\""], true),
            ("\"10-20\"", &["W/\"10-20\""], true),
            ("\"10-20\"", &["\"x\", \"10-20\""], true),
            ("\"10-20\"", &["\"x\"", "\"10-20\""], true),
            ("\"10-20\"", &["\"10-21\""], false),
        ] {
            assert_eq!(
                if_none_match_names(&with(sent), etag.as_bytes()),
                matches,
                "{etag} against {sent:?}"
            );
        }
    }
}
