//! Two jobs before the crate compiles:
//!
//! - Rebuilds the binary when a file of the embedded page or client package is added
//!   or removed (rust-embed's `include_bytes!` tracks only the files it already saw).
//! - Writes the limits the server and the page share, from their one source
//!   (`limits.json`), as a Rust module (`$OUT_DIR/limits.rs`, included by
//!   `src/room/limits.rs`) and as the ES module `clients/js/limits.js` the page and
//!   the client package import. The JS file is kept in the repository (npm packs it,
//!   Node runs it without Cargo) and rewritten only when its text would change, so
//!   a build does not touch it needlessly.

use std::path::Path;

/// The one source of the shared limits.
const SOURCE: &str = "limits.json";
/// Where the page and the client package import them from.
const JS_MODULE: &str = "clients/js/limits.js";

fn main() {
    println!("cargo:rerun-if-changed=static");
    println!("cargo:rerun-if-changed=clients/js");
    println!("cargo:rerun-if-changed={SOURCE}");
    let limits = read_limits();
    let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    write_if_changed(
        &Path::new(&out_dir).join("limits.rs"),
        &rust_module(&limits),
    );
    write_if_changed(Path::new(JS_MODULE), &js_module(&limits));
}

/// One shared limit, as `limits.json` states it.
struct Limit {
    /// The constant's name in both languages (SCREAMING_SNAKE_CASE).
    name: String,
    /// Its Rust type: `f64`, `u64` or `usize` (JS has one number type).
    rust_type: String,
    /// The value as a literal both languages read the same: `2.0` for an `f64`,
    /// `200` for an integer.
    literal: String,
    /// What it bounds and why; the doc comment in both languages.
    doc: String,
}

fn read_limits() -> Vec<Limit> {
    let text = std::fs::read_to_string(SOURCE).unwrap_or_else(|e| panic!("read {SOURCE}: {e}"));
    let entries: Vec<serde_json::Value> =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{SOURCE}: a list of limits: {e}"));
    entries.iter().map(limit).collect()
}

fn limit(entry: &serde_json::Value) -> Limit {
    let field = |key: &str| {
        entry[key]
            .as_str()
            .unwrap_or_else(|| panic!("{SOURCE}: every limit has a string `{key}`: {entry}"))
            .to_owned()
    };
    let (name, rust_type, doc) = (field("name"), field("type"), field("doc"));
    let valid = name.bytes().next().is_some_and(|b| b.is_ascii_uppercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    assert!(
        valid,
        "{SOURCE}: `{name}` is not a SCREAMING_SNAKE_CASE name"
    );
    assert!(
        !doc.contains("*/"),
        "{SOURCE}: `{name}`'s doc would end a JS comment"
    );
    let value = &entry["value"];
    let literal = match rust_type.as_str() {
        "f64" => {
            let value = value
                .as_f64()
                .unwrap_or_else(|| panic!("{SOURCE}: `{name}` is a number"));
            format!("{value:?}")
        }
        "u64" | "usize" => {
            let value = value
                .as_u64()
                .unwrap_or_else(|| panic!("{SOURCE}: `{name}` is a whole number"));
            // Past 2^53 JS would read another number than Rust.
            assert!(value < 1 << 53, "{SOURCE}: `{name}` is exact in JS");
            value.to_string()
        }
        other => panic!("{SOURCE}: `{name}` has an unknown type `{other}`"),
    };
    Limit {
        name,
        rust_type,
        literal,
        doc,
    }
}

fn rust_module(limits: &[Limit]) -> String {
    let mut out = format!("// Written by build.rs from {SOURCE}; edit that file.\n");
    for limit in limits {
        for line in limit.doc.lines() {
            out.push_str(&format!("/// {line}\n"));
        }
        out.push_str(&format!(
            "pub const {}: {} = {};\n",
            limit.name, limit.rust_type, limit.literal
        ));
    }
    out
}

fn js_module(limits: &[Limit]) -> String {
    let mut out = format!(
        "// Written by build.rs from {SOURCE} (the server reads the same file); edit that file.\n\
         /**\n \
         * limits.js — the limits the server enforces that the page and the client apply\n \
         * too, so both sides always agree on them.\n \
         *\n \
         * @module limits\n \
         */\n"
    );
    for limit in limits {
        let doc = limit.doc.lines().collect::<Vec<_>>().join("\n * ");
        out.push_str(&format!(
            "\n/** {doc} */\nexport const {} = {};\n",
            limit.name, limit.literal
        ));
    }
    out
}

fn write_if_changed(path: &Path, text: &str) {
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        return;
    }
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}
