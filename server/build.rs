//! Embeds the web app's built assets (`web/dist`, committed) in the server binary, so that
//! `cargo run -p booking-server` serves the app with no npm step. Writes
//! `$OUT_DIR/web_assets.rs`: one `(path, bytes)` entry per file, `/index.html` first.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/dist");
    println!("cargo:rerun-if-changed={}", dist.display());
    let mut files = Vec::new();
    if dist.is_dir() {
        collect(&dist, &mut files);
    } else {
        println!(
            "cargo:warning=web/dist is missing: the server will answer `/` with a note instead of the web app"
        );
    }
    files.sort();
    let mut out = String::from("/// The web app's files: (URL path, contents).\n");
    out.push_str("pub static ASSETS: &[(&str, &[u8])] = &[\n");
    for file in &files {
        let rel = file.strip_prefix(&dist).expect("below dist");
        let url: String = rel
            .components()
            .map(|c| format!("/{}", c.as_os_str().to_string_lossy()))
            .collect();
        let abs = file.canonicalize().expect("readable asset");
        writeln!(
            out,
            "    ({url:?}, include_bytes!({:?})),",
            abs.display().to_string()
        )
        .expect("writing to a String");
    }
    out.push_str("];\n");
    let target = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(target.join("web_assets.rs"), out).expect("writing web_assets.rs");
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable web/dist") {
        let path = entry.expect("readable web/dist entry").path();
        if path.is_dir() {
            collect(&path, files);
        } else {
            files.push(path);
        }
    }
}
