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
