//! The built-in mock as a child process of `capacity` (so its CPU is its own
//! and can be limited): started on 127.0.0.1:0, its URL read from its first
//! lines, and never outliving the tool. It is killed when its handle drops
//! (errors, panics, the end of the run) and, through `PR_SET_PDEATHSIG`, by
//! the kernel when the tool itself dies (even by SIGKILL).
//!
//! The child runs 10 nice levels below the tool: on one machine the
//! generator's real-time pacing must win over the server's bursts of CPU
//! (the generator needs little CPU, so the server loses almost none), or
//! every busy stage would fail the generator's self-check.
//!
//! The child is handed the settings this process already resolved (the
//! `[mock]` table and the clips' folder) as JSON on its standard input; it
//! reads no fleet file of its own.

use crate::audio::ClipSet;
use crate::config::Plan;
use crate::mock::MockConfig;
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

/// What a mock child needs to serve as the parent's plan says.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChildSettings {
    pub mock: MockConfig,
    /// The clips' folder (`audio_dir`), so the child recognises what the
    /// devices say; none = the bundled clips.
    pub audio_dir: Option<PathBuf>,
}

impl ChildSettings {
    /// The plan's resolved mock settings.
    pub fn of(plan: &Plan) -> ChildSettings {
        ChildSettings {
            mock: plan.mock.clone(),
            audio_dir: plan.audio_dir.clone(),
        }
    }

    /// Reads the settings (JSON) the parent wrote.
    pub fn read(from: impl std::io::Read) -> anyhow::Result<ChildSettings> {
        serde_json::from_reader(from).context("mock-server --settings-stdin: unreadable settings on standard input")
    }

    /// The clips to recognise (`None`: the bundled ones).
    pub fn clips(&self) -> anyhow::Result<Option<Arc<ClipSet>>> {
        Ok(match &self.audio_dir {
            Some(dir) => Some(ClipSet::from_dir(dir)?),
            None => None,
        })
    }
}

/// How long the mock child may take to print its address.
const MOCK_START_TIMEOUT: Duration = Duration::from_secs(30);
/// Nice levels the mock child runs below the tool (see the module docs).
pub const MOCK_CHILD_NICE: libc::c_int = 10;

/// Starts `xiaozhi-fleet mock-server` on 127.0.0.1:0 as a child, hands it
/// `settings` and reads its URL from its first line of output.
pub async fn spawn_mock_child(exe: &Path, settings: &ChildSettings) -> anyhow::Result<(Child, String)> {
    let mut cmd = Command::new(exe);
    cmd.args(["mock-server", "--listen", "127.0.0.1:0", "--settings-stdin"]);
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the child between fork and exec and only
    // makes async-signal-safe calls (prctl, getppid, nice), allocating
    // nothing.
    unsafe {
        cmd.pre_exec(move || {
            // Lower priority is best effort: an error leaves it as it was.
            libc::nice(MOCK_CHILD_NICE);
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if libc::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start the mock server")?;
    let mut stdin = child.stdin.take().context("mock server has no stdin")?;
    stdin.write_all(&serde_json::to_vec(settings)?).await?;
    drop(stdin);
    let stderr = child.stderr.take().context("mock server has no stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    let url = tokio::time::timeout(MOCK_START_TIMEOUT, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(u) = line.split_whitespace().find(|w| w.starts_with("ws://")) {
                return Some(u.to_string());
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
    .context("the mock server did not say where it listens")?;
    // Keep draining its output so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, url))
}

/// Kills the child and reaps it.
pub async fn stop_child(mut child: Child) {
    let _ = child.kill().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FleetFile, Plan, plan::Overrides};

    #[test]
    fn resolved_settings_reach_the_child_unchanged() {
        let text = r#"
audio_dir = "audio-samples"
[mock]
downlink = "jitter"
jitter_max = "80ms"
sentence_delay = "lognormal(300ms, 0.5)"
cpu_burn = "5ms"
cpu_burn_threads = "single"
llm_workers = 3
wake_words = ["你好小智"]
[[mock.fault]]
kind = "reject_upgrade"
p = 0.25
status = 403
"#;
        let plan = Plan::from_file(
            FleetFile::parse(text, "f.toml").unwrap(),
            "f.toml",
            &Overrides::default(),
        )
        .unwrap();
        let sent = ChildSettings::of(&plan);
        let got = ChildSettings::read(serde_json::to_vec(&sent).unwrap().as_slice()).unwrap();
        assert_eq!(got, sent);
        assert_eq!(got.mock.llm_workers, Some(3));
        assert_eq!(got.mock.faults.faults.len(), 1);
        assert!(ChildSettings::read(&b"{not json"[..]).is_err());
    }
}
