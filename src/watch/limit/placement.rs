//! `--watch-pid` (and the mock child): a cgroup of the tool's own for one
//! process, so its CPU can be limited without touching anything else.
//!
//! Owns finding the cpu controller's mount (`/proc/self/mountinfo`: a v1
//! hierarchy with the `cpu` option, else the v2 unified one with `cpu` in
//! `cgroup.controllers`), the process's current group (`/proc/PID/cgroup`),
//! creating `xiaozhi-fleet-<pid>` at the hierarchy's root, moving the whole
//! process in (`cgroup.procs`) and moving it back before removing the group.
//! The parsers are pure functions over file text.

use super::LimitError;
use super::quota::QuotaFiles;
use std::path::{Path, PathBuf};

/// Where a hierarchy with the cpu controller is mounted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuMount {
    pub mount_point: PathBuf,
    /// The hierarchy path mounted there (`/` unless in a namespace).
    pub root: String,
    pub files: QuotaFiles,
}

/// Finds the cpu controller's mount in mountinfo text: v1 first (a `cgroup`
/// mount whose super options include `cpu`), else `cgroup2`.
pub fn parse_mountinfo(text: &str) -> Option<CpuMount> {
    let mut v2 = None;
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let fields: Vec<&str> = left.split_whitespace().collect();
        let tail: Vec<&str> = right.split_whitespace().collect();
        let (Some(root), Some(point), Some(fstype)) = (fields.get(3), fields.get(4), tail.first()) else {
            continue;
        };
        let options = tail.get(2).copied().unwrap_or("");
        let mount = |files| CpuMount {
            mount_point: PathBuf::from(unescape(point)),
            root: unescape(root),
            files,
        };
        match *fstype {
            "cgroup" if options.split(',').any(|o| o == "cpu") => return Some(mount(QuotaFiles::V1)),
            "cgroup2" if v2.is_none() => v2 = Some(mount(QuotaFiles::V2)),
            _ => {}
        }
    }
    v2
}

/// mountinfo escapes spaces and the like as `\040`.
fn unescape(s: &str) -> String {
    s.replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\")
}

/// The process's group path in the hierarchy of `files` (`/proc/PID/cgroup`).
pub fn parse_proc_cgroup(text: &str, files: QuotaFiles) -> Option<String> {
    text.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let wanted = match files {
            QuotaFiles::V1 => controllers.split(',').any(|c| c == "cpu"),
            QuotaFiles::V2 => id == "0" && controllers.is_empty(),
        };
        wanted.then(|| path.to_string())
    })
}

/// A hierarchy path as a directory under the mount point.
pub fn group_dir(mount: &CpuMount, path: &str) -> PathBuf {
    let root = mount.root.trim_end_matches('/');
    let rel = path.strip_prefix(root).unwrap_or(path).trim_start_matches('/');
    if rel.is_empty() {
        mount.mount_point.clone()
    } else {
        mount.mount_point.join(rel)
    }
}

/// A process moved into a cgroup of its own.
#[derive(Debug)]
pub struct Placement {
    pub pid: u32,
    pub mount: CpuMount,
    /// The group the process came from (directory).
    pub original: PathBuf,
    /// The group created for it.
    pub created: PathBuf,
}

fn io(path: &Path, e: &std::io::Error) -> LimitError {
    LimitError::io(path, e)
}

impl Placement {
    /// Creates `xiaozhi-fleet-<pid>` under the hierarchy at `mount` and
    /// moves `pid` (every thread) into it. `proc_root` is `/proc`.
    pub fn create(pid: u32, mount: CpuMount, proc_root: &Path) -> Result<Placement, LimitError> {
        let cgroup_file = proc_root.join(pid.to_string()).join("cgroup");
        let text = std::fs::read_to_string(&cgroup_file).map_err(|e| io(&cgroup_file, &e))?;
        let path = parse_proc_cgroup(&text, mount.files).ok_or_else(|| LimitError::Parse {
            path: cgroup_file.display().to_string(),
            detail: "no cpu controller line".into(),
        })?;
        let original = group_dir(&mount, &path);
        if mount.files == QuotaFiles::V2 {
            enable_cpu_controller(&mount.mount_point)?;
        }
        let created = mount.mount_point.join(format!("xiaozhi-fleet-{pid}"));
        match std::fs::create_dir(&created) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(&created, &e)),
        }
        let placement = Placement {
            pid,
            mount,
            original,
            created,
        };
        if let Err(e) = move_to(&placement.created, pid) {
            let _ = std::fs::remove_dir(&placement.created);
            return Err(e);
        }
        Ok(placement)
    }

    /// Moves the process back to its group and removes the created one
    /// (a process that already exited needs no move).
    pub fn undo(&self) -> Result<(), LimitError> {
        let moved = match move_to(&self.original, self.pid) {
            Ok(()) => Ok(()),
            Err(_) if !Path::new(&format!("/proc/{}", self.pid)).exists() => Ok(()),
            Err(e) => Err(e),
        };
        let removed = std::fs::remove_dir(&self.created).or_else(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Ok(()),
            _ => Err(io(&self.created, &e)),
        });
        moved.and(removed)
    }
}

/// Writes the process id to `cgroup.procs` (moves every thread).
fn move_to(dir: &Path, pid: u32) -> Result<(), LimitError> {
    let procs = dir.join("cgroup.procs");
    std::fs::write(&procs, pid.to_string()).map_err(|e| io(&procs, &e))
}

/// v2: the cpu controller must be enabled for the root's children.
fn enable_cpu_controller(root: &Path) -> Result<(), LimitError> {
    let controllers = root.join("cgroup.controllers");
    let available = std::fs::read_to_string(&controllers).map_err(|e| io(&controllers, &e))?;
    if !available.split_whitespace().any(|c| c == "cpu") {
        return Err(LimitError::Unsupported(format!(
            "the cgroup v2 hierarchy at {} has no cpu controller",
            root.display()
        )));
    }
    let subtree = root.join("cgroup.subtree_control");
    let enabled = std::fs::read_to_string(&subtree).unwrap_or_default();
    if enabled.split_whitespace().any(|c| c == "cpu") {
        return Ok(());
    }
    std::fs::write(&subtree, "+cpu").map_err(|e| io(&subtree, &e))
}
