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

/// A scratch directory for one test.
fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("xf-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Waits (at most `limit`) for the child to exit.
fn wait_bounded(child: &mut std::process::Child, limit: std::time::Duration) -> std::process::ExitStatus {
    let until = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if std::time::Instant::now() > until {
            let _ = child.kill();
            panic!("the tool did not exit within {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn every_command_shows_the_exit_code_table() {
    for args in [
        vec!["--help"],
        vec!["run", "--help"],
        vec!["mock-server", "--help"],
        vec!["capacity", "--help"],
        vec!["validate", "--help"],
        vec!["diagnose", "--help"],
    ] {
        let out = bin().args(&args).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        for needle in ["Exit codes:", "every turn failed", "130", "SIGTERM"] {
            assert!(text.contains(needle), "{args:?} --help lacks {needle}: {text}");
        }
    }
}

#[test]
fn sigterm_and_sighup_mid_run_write_every_report_and_exit_130() {
    use std::io::BufRead;
    for (signal, name) in [(libc::SIGTERM, "SIGTERM"), (libc::SIGHUP, "SIGHUP")] {
        let dir = scratch(&format!("signal-{name}"));
        let (json, text) = (dir.join("r.json"), dir.join("r.txt"));
        let mut child = bin()
            .args(["run", "--devices", "3", "--duration", "60s", "-q", "--report"])
            .arg(&json)
            .arg("--report")
            .arg(&text)
            .env("RUST_LOG", "xiaozhi_fleet=debug")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Mid-run: once a device is connecting, the driver is running.
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut all = String::new();
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("device connecting") {
                    let _ = tx.send(());
                }
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        if rx.recv_timeout(std::time::Duration::from_secs(60)).is_err() {
            let _ = child.kill();
            panic!("{name}: the run never started: {}", reader.join().unwrap());
        }
        assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
        let status = wait_bounded(&mut child, std::time::Duration::from_secs(60));
        let err = reader.join().unwrap();
        assert_eq!(status.code(), Some(130), "{name}: {err}");
        assert!(err.contains(&format!("{name}: stopping new turns")), "{name}: {err}");
        let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        assert_eq!(report["run"]["interrupted"], true, "{name}");
        assert!(report["run"]["duration_s"].as_f64().unwrap() < 60.0, "{name}");
        let summary = std::fs::read_to_string(&text).unwrap();
        assert!(summary.contains("(interrupted)"), "{name}: {summary}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn unwritable_report_or_record_dir_exits_2_before_any_device_connects() {
    let dir = scratch("unwritable");
    // A directory where the report file should go.
    let taken = dir.join("taken.json");
    std::fs::create_dir_all(&taken).unwrap();
    // A path under a plain file cannot be created, even by root.
    let file = dir.join("plain");
    std::fs::write(&file, "x").unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/xiaozhi/v1/", listener.local_addr().unwrap());
    let cases: [(Vec<std::ffi::OsString>, &str); 3] = [
        (
            vec!["--report".into(), file.join("r.json").into()],
            "cannot write report",
        ),
        (
            vec![
                "--record".into(),
                "worst=1".into(),
                "--record-dir".into(),
                file.join("rec").into(),
            ],
            "cannot write recordings",
        ),
        (vec!["--report".into(), taken.clone().into()], "it is a directory"),
    ];
    for (extra, reason) in cases {
        let out = bin()
            .args(["run", "--url", &url, "--devices", "2", "--turns", "1", "-q"])
            .args(&extra)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {err}");
        assert!(err.contains(reason), "{extra:?}: {err}");
        assert!(!err.contains("Running"), "{extra:?}: the run started: {err}");
    }
    // Not one connection reached the server.
    listener.set_nonblocking(true).unwrap();
    assert_eq!(
        listener.accept().map(|_| ()).map_err(|e| e.kind()),
        Err(std::io::ErrorKind::WouldBlock)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn values_that_used_to_panic_exit_2_naming_file_line_and_key() {
    let dir = scratch("panics");
    let cases = [
        ("devices = 2\nduration = \"1e30s\"\n", 2, "1e30s"),
        ("devices = 2\nramp = 1e-300\n", 2, "ramp"),
        (
            "devices = 2\n\nthink_time = \"lognormal(1s, 5000)\"\n",
            3,
            "lognormal(1s, 5000)",
        ),
        ("hello_timeout = \"0s\"\n", 1, "hello_timeout"),
        ("no_reply_timeout = \"0ms\"\n", 1, "no_reply_timeout"),
        ("duration = \"10s\"\narrivals = \"1e-300/s\"\n", 2, "1e-300/s"),
        ("[mock]\nllm_workers = 18446744073709551615\n", 2, "mock.llm_workers"),
        ("[mock]\nsentence_delay = \"exp(1e30s)\"\n", 2, "1e30s"),
        ("devices = 10\n\n[[group]]\ncount = 30\n", 3, "group"),
        (
            "devices = 10\n[[group]]\nweight = 0.5\n[[group]]\nweight = 0.3\n",
            3,
            "group[0].weight",
        ),
    ];
    for (i, (text, line, key)) in cases.iter().enumerate() {
        let file = dir.join(format!("case{i}.toml"));
        std::fs::write(&file, text).unwrap();
        let out = bin().arg("validate").arg(&file).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}: {err}");
        assert!(err.contains(&format!("{}:{line}", file.display())), "{text}: {err}");
        assert!(err.contains(key), "{text}: {err}");
        assert!(!err.contains("panicked"), "{text}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn slow_ramp_earns_a_warning_in_validate() {
    let dir = scratch("ramp-warning");
    let file = dir.join("slow.toml");
    std::fs::write(&file, "devices = 100\nramp = 0.01\nduration = \"10s\"\n").unwrap();
    let out = bin().arg("validate").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning:") && err.contains("ramp") && err.contains("never connect"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn validate_prints_values_as_fleet_files_spell_them() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fleets");
    let out = bin()
        .arg("validate")
        .arg(dir.join("idle-500-talk-20.toml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for spelled in [
        "mode auto",
        "mode manual",
        "idle silent",
        "idle listening",
        "downlink realtime",
    ] {
        assert!(text.contains(spelled), "lacks {spelled}: {text}");
    }
    assert!(!text.contains("Auto") && !text.contains("Silent"), "{text}");
    let out = bin()
        .arg("validate")
        .arg(dir.join("steps-10-20-40.toml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("stop: after the last stage (3 stage(s), 180s of measuring"),
        "{text}"
    );
}

#[test]
fn validate_prints_the_load_shape_with_its_parameters() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fleets");
    let stdout = |file: &Path, extra: &[&str]| {
        let out = bin().arg("validate").arg(file).args(extra).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let steps = stdout(&dir.join("steps-10-20-40.toml"), &[]);
    assert!(
        steps.contains(
            "load: a step plan of concurrent speakers: 10 for 60s, 20 for 60s, 40 for 60s\nshape: steady (closed loop)"
        ),
        "{steps}"
    );
    let open = stdout(&dir.join("idle-500-talk-20.toml"), &[]);
    assert!(
        open.contains("load: open model: conversations arrive as a Poisson process at 0.9 per second"),
        "{open}"
    );
    let scratch_dir = scratch("shape");
    let file = scratch_dir.join("burst.toml");
    std::fs::write(&file, "speakers = 8\nduration = \"30s\"\nshape = \"burst\"\n").unwrap();
    let burst = stdout(&file, &[]);
    assert!(
        burst.contains("load: a step plan of concurrent speakers: 8 for 30s\nshape: burst (closed loop in rounds)"),
        "{burst}"
    );
    let _ = std::fs::remove_dir_all(&scratch_dir);
}

#[test]
fn a_value_that_is_no_choice_names_file_line_key_and_the_choices() {
    let dir = scratch("choices");
    let cases = [
        (
            "devices = 2\n\n[[group]]\nmode = \"push\"\n",
            "4: `group[0].mode` must be auto, manual or realtime; got `push`",
        ),
        (
            "[mock]\ndownlink = \"trickle\"\n",
            "2: `mock.downlink` must be realtime, burst, jitter or stall; got `trickle`",
        ),
        (
            "shape = \"wave\"\n",
            "1: `shape` must be steady, burst or poisson; got `wave`",
        ),
    ];
    for (i, (text, said)) in cases.iter().enumerate() {
        let file = dir.join(format!("case{i}.toml"));
        std::fs::write(&file, text).unwrap();
        let out = bin().arg("validate").arg(&file).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}: {err}");
        assert!(err.contains(&format!("{}:{said}", file.display())), "{text}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn audio_dir_is_relative_to_the_fleet_file() {
    let dir = scratch("audio-dir");
    let clips = dir.join("clips");
    std::fs::create_dir_all(&clips).unwrap();
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("audio-samples");
    for entry in std::fs::read_dir(&samples).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, clips.join(path.file_name().unwrap())).unwrap();
    }
    std::fs::write(dir.join("f.toml"), "devices = 1\naudio_dir = \"clips\"\n").unwrap();
    // Run from elsewhere: the directory is found beside the fleet file.
    let out = bin()
        .current_dir(std::env::temp_dir())
        .arg("validate")
        .arg(dir.join("f.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rust_log_debug_shows_connection_attempts_and_failures_and_the_default_stays_quiet() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("ws://127.0.0.1:{port}/xiaozhi/v1/");
    let args = ["run", "--url", &url, "--devices", "2", "--turns", "1", "-q"];
    let out = bin().args(args).env("RUST_LOG", "debug").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let attempts = err
        .lines()
        .filter(|l| l.contains("DEBUG") && l.contains("connecting"))
        .count();
    assert!(attempts >= 2, "{err}");
    assert!(
        err.lines().any(|l| l.contains("failed") && l.contains("connect")),
        "{err}"
    );
    let out = bin().args(args).args(["-vv"]).env_remove("RUST_LOG").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("connecting"));
    let out = bin().args(args).env_remove("RUST_LOG").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("DEBUG") && !err.contains("INFO"), "{err}");
}

#[test]
fn run_exits_2_when_every_turn_failed() {
    let dir = scratch("all-failed");
    let file = dir.join("f.toml");
    // The mock starts its answer ~200 ms after end of speech; a 1 ms limit
    // fails every turn `no_reply`.
    std::fs::write(&file, "devices = 2\nturns = 1\nno_reply_timeout = \"1ms\"\n").unwrap();
    let out = bin().arg("run").arg(&file).arg("-q").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("every turn failed (2 of 2)"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn run_options_work_without_a_command() {
    let dir = scratch("no-command");
    let json = dir.join("r.json");
    let out = bin()
        .args(["--devices", "1", "--turns", "1", "-q", "--report"])
        .arg(&json)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["run"]["devices"], 1);
    assert_eq!(report["turns"]["completed"], 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_ota_url_that_is_not_http_is_a_clear_configuration_error() {
    let out = bin()
        .args(["run", "--ota", "ws://127.0.0.1:1/xiaozhi/ota/", "--devices", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("must start with http:// or https://"), "{err}");
    assert!(err.contains("ota"), "{err}");
}

#[test]
fn diagnose_with_an_unknown_network_profile_exits_2_naming_the_choices() {
    let out = bin()
        .args(["diagnose", "--networks", "wifi-bad", "--cell-duration", "5s"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("wifi-bad") && err.contains("wifi-poor"), "{err}");
    assert!(!err.contains("cell 1/"), "nothing ran: {err}");
}
