//! The shape of the crate cannot rot: `scripts/import-map` reads every import in
//! `src/` and fails on any import loop, on room/ importing backplane/, http/ or
//! the registry, and on a backplane that does not implement room/'s port.

use std::process::Command;

#[test]
fn the_import_map_has_no_loops_and_the_room_core_names_no_infrastructure() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/import-map");
    let output = Command::new("python3")
        .arg(script)
        .output()
        .expect("python3 runs scripts/import-map");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(report.contains("shape ok"), "{report}");
}

/// Every `.rs` file under `src/<dir>`, with its text.
fn sources(dir: &str) -> Vec<(std::path::PathBuf, String)> {
    let mut found = Vec::new();
    let mut pending = vec![std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("source dir readable") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                let text = std::fs::read_to_string(&path).expect("source readable");
                found.push((path, text));
            }
        }
    }
    found
}

#[test]
fn the_room_core_names_no_runtime_socket_thread_store_or_web_framework() {
    const FORBIDDEN: &[&str] = &[
        "tokio",
        "std::net",
        "std::thread",
        "std::os::fd",
        "libc",
        "io_uring",
        "redis",
        "axum",
        "hyper",
    ];
    let mut named = Vec::new();
    for (path, text) in sources("src/room") {
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for word in FORBIDDEN.iter().filter(|word| code.contains(**word)) {
                named.push(format!("{}:{}: {word}", path.display(), number + 1));
            }
        }
    }
    assert!(
        named.is_empty(),
        "room/ must stay pure:\n{}",
        named.join("\n")
    );
}

/// Blanks string and character literals and comments, so that braces in them
/// do not count.
fn code_of(line: &str) -> String {
    let mut code = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
            }
            '\'' => {
                // A char literal ('{', '\n') or a lifetime ('a): skip the literal only.
                let rest: String = chars.clone().take(3).collect();
                if rest.starts_with('\\') {
                    chars.nth(2);
                } else if rest.chars().nth(1) == Some('\'') {
                    chars.nth(1);
                }
            }
            '/' if chars.peek() == Some(&'/') => break,
            _ => code.push(c),
        }
    }
    code
}

/// Where a function starts: `fn name` after optional qualifiers.
fn function_name(line: &str) -> Option<&str> {
    let mut words = line.split_whitespace().peekable();
    while let Some(word) = words.next() {
        match word {
            "fn" => {
                return words
                    .next()
                    .map(|name| name.split(['(', '<']).next().unwrap_or(name))
            }
            "pub" | "async" | "unsafe" | "const" | "extern" | "\"C\"" => {}
            w if w.starts_with("pub(") => {}
            _ => return None,
        }
    }
    None
}

#[test]
fn no_function_in_src_is_over_100_lines() {
    const MAX_LINES: usize = 100;
    let mut long = Vec::new();
    for (path, text) in sources("src") {
        let lines: Vec<&str> = text.lines().collect();
        for (start, line) in lines.iter().enumerate() {
            let Some(name) = function_name(line) else {
                continue;
            };
            let (mut depth, mut opened) = (0i64, false);
            for (end, line) in lines.iter().enumerate().skip(start) {
                let code = code_of(line);
                if !opened && code.contains(';') && !code.contains('{') {
                    break; // a declaration without a body
                }
                for c in code.chars() {
                    match c {
                        '{' => {
                            depth += 1;
                            opened = true;
                        }
                        '}' => depth -= 1,
                        _ => {}
                    }
                }
                if opened && depth == 0 {
                    let length = end - start + 1;
                    if length > MAX_LINES {
                        long.push(format!("{}: fn {name}: {length} lines", path.display()));
                    }
                    break;
                }
            }
        }
    }
    assert!(long.is_empty(), "split these:\n{}", long.join("\n"));
}
