//! Embeds the commit the binary is built from, for `latch --version` (`unknown` outside a git
//! checkout), and rebuilds when the checkout's HEAD moves, the built widget or a migration changes.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok().filter(|o| o.status.success())?;
    String::from_utf8(out.stdout).ok().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

fn main() {
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=LATCH_COMMIT={commit}");
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        println!("cargo:rerun-if-changed={dir}/HEAD");
        if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed={dir}/{reference}");
        }
        if std::path::Path::new(&format!("{dir}/packed-refs")).exists() {
            println!("cargo:rerun-if-changed={dir}/packed-refs");
        }
    }
    // The widget is embedded (see `assets`): a rebuilt widget rebuilds the server.
    println!("cargo:rerun-if-changed=../target/widget-dist");
    // `sqlx::migrate!` embeds the migrations, but on stable Rust nothing tells cargo that a new
    // file there changes the crate (sqlx's documentation asks for this line).
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=build.rs");
}
