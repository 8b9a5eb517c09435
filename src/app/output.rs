//! A run's outputs, made so they cannot lose a run: every `--report` path
//! and the recording directory are checked for writability before anything
//! connects, and at the end each recording is written on its own, so one
//! failure is reported without losing the others (or the summary).

use crate::config::Plan;
use crate::record::trace::TurnTrace;
use crate::record::{Recording, write_recording};
use anyhow::anyhow;
use std::fs;
use std::path::{Path, PathBuf};

/// Where the run's files go, checked.
#[derive(Debug)]
pub(crate) struct Outputs {
    /// The recording directory, when a rule records, and whether the check created it.
    record_dir: Option<(PathBuf, bool)>,
}

impl Outputs {
    /// Checks every report path and the recording directory; the error
    /// names the path and the reason.
    pub fn check(plan: &Plan, reports: &[PathBuf]) -> anyhow::Result<Outputs> {
        for path in reports {
            check_file(path).map_err(|e| anyhow!("cannot write report {}: {e}", path.display()))?;
        }
        let record_dir = if plan.record.is_empty() {
            None
        } else {
            let dir = plan.record_dir.clone().unwrap_or_else(default_record_dir);
            let created = check_dir(&dir).map_err(|e| anyhow!("cannot write recordings to {}: {e}", dir.display()))?;
            Some((dir, created))
        };
        Ok(Outputs { record_dir })
    }

    /// Writes each kept turn's WAV and timeline; returns the written ones
    /// and, if some failed, why.
    pub fn write_recordings(&self, traces: &[TurnTrace]) -> (Vec<Recording>, Vec<String>) {
        let Some((dir, created)) = &self.record_dir else {
            return (Vec::new(), Vec::new());
        };
        if traces.is_empty() {
            if *created {
                // Nothing was kept: leave no empty directory behind.
                let _ = fs::remove_dir(dir);
            }
            return (Vec::new(), Vec::new());
        }
        let mut written = Vec::with_capacity(traces.len());
        let mut first_error = None;
        for t in traces {
            match write_recording(dir, t) {
                Ok(r) => written.push(r),
                Err(e) => {
                    first_error.get_or_insert(e.to_string());
                }
            }
        }
        eprintln!("{} recording(s) written to {}", written.len(), dir.display());
        let errors = first_error
            .map(|e| {
                format!(
                    "cannot write {} of {} recordings to {}: {e}",
                    traces.len() - written.len(),
                    traces.len(),
                    dir.display()
                )
            })
            .into_iter()
            .collect();
        (written, errors)
    }
}

/// `runs/<date-time>` in the current directory.
fn default_record_dir() -> PathBuf {
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .replace(':', "")
        .replace('T', "-")
        .trim_end_matches('Z')
        .to_string();
    PathBuf::from("runs").join(stamp)
}

/// Can `path` be written? Creates missing parent directories (as writing
/// the report will) and opens the file for appending, which leaves an
/// existing file as it is; a file the check created is removed again.
pub(crate) fn check_file(path: &Path) -> Result<(), String> {
    if path.is_dir() {
        return Err("it is a directory".to_string());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let existed = path.exists();
    fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| e.to_string())?;
    if !existed {
        let _ = fs::remove_file(path);
    }
    Ok(())
}

/// Can files be created in `dir`? Creates it if missing (returns whether it
/// did) and writes and removes a probe file.
pub(crate) fn check_dir(dir: &Path) -> Result<bool, String> {
    let existed = dir.is_dir();
    fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let probe = dir.join(format!(".xiaozhi-fleet-write-check-{}", std::process::id()));
    fs::write(&probe, b"").map_err(|e| e.to_string())?;
    let _ = fs::remove_file(&probe);
    Ok(!existed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xf-output-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_path_under_a_file_is_not_writable() {
        let dir = scratch("under-file");
        let file = dir.join("plain");
        fs::write(&file, "x").unwrap();
        assert!(check_file(&file.join("r.json")).is_err());
        assert!(check_dir(&file.join("rec")).is_err());
        assert!(check_file(&dir).unwrap_err().contains("directory"));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn checks_leave_existing_files_alone_and_new_ones_absent() {
        let dir = scratch("leave");
        let old = dir.join("old.json");
        fs::write(&old, "keep me").unwrap();
        check_file(&old).unwrap();
        assert_eq!(fs::read_to_string(&old).unwrap(), "keep me");
        let new = dir.join("sub/new.txt");
        check_file(&new).unwrap();
        assert!(!new.exists());
        assert_eq!(check_dir(&dir.join("rec")), Ok(true));
        assert_eq!(fs::read_dir(dir.join("rec")).unwrap().count(), 0, "no probe left");
        assert_eq!(check_dir(&dir.join("rec")), Ok(false));
        fs::remove_dir_all(&dir).unwrap();
    }
}
