//! The `provision` command: the fleet's device identities (its seed and
//! size, as `run` uses them) registered with the admin API through
//! [`crate::provision`], with progress on stderr and the summary on stdout.

use crate::config::Plan;
use crate::provision::{ProvisionOptions, Summary, Token, provision};
use std::fmt::Write;
use std::time::Duration;

/// The command line's part of the options.
#[derive(Debug)]
pub struct ProvisionArgs {
    pub manager_api: String,
    pub token: Token,
    pub agent: String,
    pub by_code: bool,
    pub concurrency: usize,
}

/// Each HTTP exchange's time limit.
const EXCHANGE_LIMIT: Duration = Duration::from_secs(10);

/// The options for `plan`'s devices (its seed, size and OTA URL).
pub fn options(plan: &Plan, args: ProvisionArgs) -> ProvisionOptions {
    ProvisionOptions {
        manager_api: args.manager_api,
        token: args.token,
        agent: args.agent,
        ota: plan.ota.clone(),
        by_code: args.by_code,
        seed: plan.seed,
        devices: plan.devices,
        concurrency: args.concurrency,
        timeout: EXCHANGE_LIMIT,
    }
}

/// The summary line, then each failure with its reason.
pub fn render(s: &Summary) -> String {
    let mut out = format!("{}\n", s.line());
    for (device, why) in &s.failed {
        let _ = writeln!(out, "  failed {device}: {why}");
    }
    out
}

/// Provisions, printing progress (fleets of 20 and more, every tenth) and
/// the summary.
pub async fn run(opts: &ProvisionOptions) -> anyhow::Result<Summary> {
    let how = if opts.by_code { "by activation code" } else { "by MAC" };
    eprintln!(
        "Provisioning {} devices (seed {}) with the admin API at {}, {how}, agent {}",
        opts.devices, opts.seed, opts.manager_api, opts.agent
    );
    let step = (opts.devices / 10).max(1);
    let summary = provision(opts, |done, total| {
        if total >= 20 && (done % step == 0 || done == total) {
            eprintln!("  {done}/{total}");
        }
    })
    .await?;
    print!("{}", render(&summary));
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_follow_the_summary_line() {
        let s = Summary {
            devices: 3,
            added: 1,
            already_bound: 1,
            failed: vec![("02:aa:00:00:00:02".into(), "code 500: unknown activation code 1".into())],
            by_code: true,
        };
        assert_eq!(
            render(&s),
            "provisioned 3 devices: 1 bound by code, 1 already bound, 1 failed\n  failed 02:aa:00:00:00:02: code 500: unknown activation code 1\n"
        );
    }
}
