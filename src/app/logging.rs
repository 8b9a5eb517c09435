//! Diagnostic output: `tracing` events on stderr. By default only warnings,
//! so the console stays clean; `-v` shows this tool's info events, `-vv`
//! its debug events (every connection attempt and failure), `-vvv` trace
//! and dependencies' debug; without `-v`, `RUST_LOG` (e.g. `RUST_LOG=debug`,
//! `RUST_LOG=xiaozhi_fleet::fleet=debug`) chooses.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// The filter for `-v` given `verbose` times, or from `RUST_LOG`.
fn filter(verbose: u8) -> EnvFilter {
    match verbose {
        0 => match std::env::var("RUST_LOG") {
            Ok(spec) if !spec.trim().is_empty() => EnvFilter::try_new(&spec).unwrap_or_else(|e| {
                eprintln!("warning: RUST_LOG={spec} is not a valid filter ({e}); showing warnings only");
                EnvFilter::new("warn")
            }),
            _ => EnvFilter::new("warn"),
        },
        1 => EnvFilter::new("warn,xiaozhi_fleet=info"),
        2 => EnvFilter::new("warn,xiaozhi_fleet=debug"),
        _ => EnvFilter::new("debug,xiaozhi_fleet=trace"),
    }
}

/// Installs the stderr subscriber once, at start-up.
pub fn init(verbose: u8) {
    let stderr = std::io::stderr();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter(verbose))
        .with_writer(std::io::stderr)
        .with_ansi(stderr.is_terminal())
        .try_init();
}
