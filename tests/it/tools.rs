//! External tools some tests drive (Debian's `chromium`, `promtool`). On a
//! machine with only the Rust toolchain those tests say they were skipped;
//! with `XF_REQUIRE_TOOLS=1` (set by `.ci/run`, which installs them) a
//! missing tool fails the test instead.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The tool's path, or None (skipped) when it is not installed.
pub fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        let required = std::env::var("XF_REQUIRE_TOOLS").is_ok_and(|v| v == "1");
        assert!(!required, "{name} is required (XF_REQUIRE_TOOLS=1) but not installed");
        eprintln!("skipped: {name} is not installed (apt-get install chromium prometheus, or run .ci/run)");
    }
    found
}

/// `promtool check metrics` on an exposition; panics with its complaints.
pub fn promtool_check_metrics(promtool: &PathBuf, text: &str) {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn alert_rules_pass_promtool() {
    let Some(promtool) = tool("promtool") else { return };
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/prometheus/alerts.yml");
    let out = Command::new(promtool).args(["check", "rules", rules]).output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
