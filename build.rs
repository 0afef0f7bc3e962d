//! Rebuilds the binary when a file of the embedded page or client package is added
//! or removed (rust-embed's `include_bytes!` tracks only the files it already saw).
fn main() {
    println!("cargo:rerun-if-changed=static");
    println!("cargo:rerun-if-changed=clients/js");
}
