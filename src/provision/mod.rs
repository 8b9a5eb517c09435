//! `provision`: registers a fleet's seeded device identities with a full
//! deployment's admin API once (PROTOCOL.md §1.5), so that `run` with the
//! same seed finds every device bound. Each device is bound by MAC
//! (`manual-add`) or, with `by_code`, by the code its OTA answer gives it
//! (`bind/{agent}/{code}`). Idempotent: "already bound" counts as success,
//! and so does an OTA answer without activation. A bounded number of
//! devices at a time; a refused token stops everything at once.
//!
//! - `manager`: the bind calls, the hidden [`Token`], answer classification.

pub mod manager;

pub use manager::{Answer, Manager, Token};

use crate::device::identity_for;
use crate::device::ota::{OtaClient, version};
use crate::ota::OtaProfile;
use crate::protocol::DeviceIdentity;
use futures_util::StreamExt;
use std::time::Duration;

/// What to register, where, and how.
#[derive(Debug)]
pub struct ProvisionOptions {
    /// The admin API with its context path, e.g. `http://host:8002/xiaozhi`.
    pub manager_api: String,
    pub token: Token,
    /// The agent the devices are bound to.
    pub agent: String,
    /// The OTA URL (needed with `by_code`).
    pub ota: Option<String>,
    /// Bind by the OTA answer's activation code instead of by MAC.
    pub by_code: bool,
    /// The fleet's seed and size: the identities `run` uses.
    pub seed: u64,
    pub devices: u32,
    /// Devices registered at the same time (at least 1).
    pub concurrency: usize,
    /// Each HTTP exchange's time limit.
    pub timeout: Duration,
}

/// What a provisioning did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub devices: u32,
    pub added: u32,
    pub already_bound: u32,
    /// Device id and reason, in device order.
    pub failed: Vec<(String, String)>,
    pub by_code: bool,
}

impl Summary {
    /// "provisioned 100 devices: 97 added, 3 already bound, 0 failed".
    pub fn line(&self) -> String {
        let verb = if self.by_code { "bound by code" } else { "added" };
        format!(
            "provisioned {} devices: {} {verb}, {} already bound, {} failed",
            self.devices,
            self.added,
            self.already_bound,
            self.failed.len()
        )
    }
}

/// Why provisioning stopped before the end.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("--by-code needs the OTA URL (--ota, or `ota` in the fleet file)")]
    NoOta,
    #[error("cannot build an HTTP client: {0}")]
    Client(String),
    #[error("the admin API refused the token: {0}")]
    Unauthorized(String),
}

/// Registers device `identity`.
async fn one(manager: &Manager, ota: Option<&OtaClient>, opts: &ProvisionOptions, id: &DeviceIdentity) -> Answer {
    let Some(client) = ota else {
        let p = OtaProfile::bread_compact_wifi("");
        return manager
            .manual_add(&opts.agent, &p.board_type, &p.firmware_version, &id.device_id)
            .await;
    };
    match version(client, id, opts.timeout).await {
        Err(f) => Answer::Failed(f.detail),
        Ok((b, _)) => match b.activation.and_then(|a| a.code) {
            // Served without activation: bound already.
            None => Answer::AlreadyBound,
            Some(code) => manager.bind(&opts.agent, &code).await,
        },
    }
}

/// Registers every device of the fleet, `opts.concurrency` at a time,
/// calling `progress(done, total)` after each.
pub async fn provision(opts: &ProvisionOptions, mut progress: impl FnMut(u32, u32)) -> Result<Summary, ProvisionError> {
    let ota = match (opts.by_code, &opts.ota) {
        (false, _) => None,
        (true, None) => return Err(ProvisionError::NoOta),
        (true, Some(url)) => Some(OtaClient::new(url, None).map_err(|e| ProvisionError::Client(e.to_string()))?),
    };
    let manager = Manager::new(&opts.manager_api, opts.token.clone(), opts.timeout)
        .map_err(|e| ProvisionError::Client(e.to_string()))?;
    let (manager, ota) = (&manager, ota.as_ref());
    let mut results = futures_util::stream::iter(0..opts.devices)
        .map(|i| async move {
            let id = identity_for(opts.seed, i, None);
            let answer = one(manager, ota, opts, &id).await;
            (i, id.device_id, answer)
        })
        .buffer_unordered(opts.concurrency.max(1));
    let mut summary = Summary {
        devices: opts.devices,
        by_code: opts.by_code,
        ..Summary::default()
    };
    let mut failed = Vec::new();
    let mut done = 0;
    while let Some((i, device, answer)) = results.next().await {
        match answer {
            Answer::Bound => summary.added += 1,
            Answer::AlreadyBound => summary.already_bound += 1,
            Answer::Unauthorized(why) => return Err(ProvisionError::Unauthorized(why)),
            Answer::Failed(why) => failed.push((i, device, why)),
        }
        done += 1;
        progress(done, opts.devices);
    }
    failed.sort();
    summary.failed = failed.into_iter().map(|(_, d, why)| (d, why)).collect();
    Ok(summary)
}
