//! The real binary: help, validate on every shipped fleet file, exit codes.

use std::path::Path;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_xiaozhi-fleet"))
}

#[test]
fn help_shows_commands_and_examples() {
    let out = bin().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for word in ["run", "mock-server", "validate", "Examples"] {
        assert!(text.contains(word), "--help lacks {word}: {text}");
    }
    let out = bin().args(["run", "--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("--report"));
}

#[test]
fn validate_accepts_every_shipped_fleet_file() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fleets");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let out = bin().arg("validate").arg(&path).output().unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("devices:"));
        n += 1;
    }
    assert!(n >= 2, "expected fleet files in {}", dir.display());
}

#[test]
fn misspelt_key_exits_2_naming_file_line_and_key() {
    let dir = std::env::temp_dir().join(format!("xf-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(&file, "devices = 2\n\nturnz = 3\n").unwrap();
    for cmd in ["validate", "run"] {
        let out = bin().arg(cmd).arg(&file).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{cmd}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("{}:3:1", file.display())), "{cmd}: {err}");
        assert!(err.contains("turnz"), "{cmd}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn nothing_to_connect_to_exits_2() {
    // Port 9 on loopback (discard) is closed on any test machine we run on;
    // the run must fail fast with exit 2, not hang or panic.
    let out = bin()
        .args([
            "run",
            "--url",
            "ws://127.0.0.1:9/xiaozhi/v1/",
            "--devices",
            "2",
            "--turns",
            "1",
            "-q",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("failed connect: 2"));
}
