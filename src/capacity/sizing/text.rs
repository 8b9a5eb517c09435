//! Operator wording of a [`Sizing`]: the headline, the explanation lines
//! and the evidence (the figures each line stands on).
//!
//! This file owns only words and number formatting; every decision is made
//! in the parent module and read back from the [`Sizing`] here.

use super::model::{
    BURST_SATURATION, CLEARLY_IDLE_SHARE, HEADROOM, HOT_THREAD_PROCESS_SHARE, MemoryBand, SATURATION_SHARE, Saturation,
    Sizing, StageServer, THROTTLED_SATURATION, Verdict,
};
use super::words::num;

/// The speaker count the needs were computed for.
fn sized_for(s: &Sizing) -> u32 {
    s.target_speakers.unwrap_or(s.knee.max(1))
}

/// Megabytes as gigabytes, one decimal: 9408 → "9.2", 8192 → "8".
fn gb(mb: f64) -> String {
    let text = format!("{:.1}", mb / 1024.0);
    text.trim_end_matches(".0").to_string()
}

fn pct(share: f64) -> String {
    format!("{:.0}%", share * 100.0)
}

/// A thread's share of one core, capped at 100% (sampling jitter).
fn core_pct(share: f64) -> String {
    pct(share.min(1.0))
}

fn cores_word(c: f64) -> String {
    if (c - 1.0).abs() < 1e-9 {
        "1 core".into()
    } else {
        format!("{} cores", num(c))
    }
}

fn limits(cores: Option<f64>, memory_mb: Option<f64>) -> Option<String> {
    match (cores, memory_mb) {
        (Some(c), Some(m)) => Some(format!("{} / {} GB", cores_word(c), gb(m))),
        (Some(c), None) => Some(format!("{} (memory allotment unknown)", cores_word(c))),
        (None, Some(m)) => Some(format!("{} GB (CPU allotment unknown)", gb(m))),
        (None, None) => None,
    }
}

/// The explanation lines stored in [`Sizing::explanation`].
pub(super) fn explain(s: &Sizing, judged: &StageServer, cores: Option<f64>) -> Vec<String> {
    let mut lines = Vec::new();
    if s.first_fail.is_none() {
        lines.push(format!(
            "No stage failed; judged at the largest stage ({} speakers), so the knee may be higher.",
            judged.speakers
        ));
    }
    lines.push(saturation_line(s, judged, cores));
    lines.extend(super::text_scaling::lines(s));
    lines.push(memory_line(s));
    lines.extend(cost_lines(s));
    let target = sized_for(s);
    match s.target_speakers {
        None => lines.push(format!(
            "No --target-speakers: no SUFFICIENT/INSUFFICIENT verdict; the needs above are for the knee ({target} speakers) with {HEADROOM}× headroom."
        )),
        Some(t) => {
            if let Some(fail) = s.first_fail.filter(|f| *f <= t) {
                let there = cores.map_or("here".to_string(), |c| format!("at {}", cores_word(c)));
                lines.push(format!(
                    "Measured: {fail} speakers already failed the SLOs {there}, so {t} cannot be held there as is."
                ));
            }
            if s.tier.is_none() {
                lines.push(no_tier_line(s));
            }
        }
    }
    if s.confidence == "low" && s.scaling.is_none() {
        lines.push(format!(
            "{target} speakers is {:.1}× the largest measured stage: the figures are extrapolated; rerun with more speakers to confirm.",
            s.extrapolation
        ));
    }
    if s.current_cores.is_none() && s.current_memory_mb.is_none() {
        let checked = match (&s.scaling, s.verdict_cores, s.verdict) {
            (Some(_), Some(c), Some(_)) => format!(
                "the verdict is about the measured allotments (the largest: {})",
                cores_word(c)
            ),
            _ => "only the measured knee was checked".to_string(),
        };
        lines.push(format!(
            "The server's allotment is unknown (give --server-cpus/--server-memory, or watch its cgroup or container): {checked}."
        ));
    }
    lines
}

fn no_tier_line(s: &Sizing) -> String {
    match (s.verdict, s.saturated) {
        (Some(Verdict::Sufficient), _) => "The current allotment suffices; no smaller listed tier fits.".into(),
        _ if s.scaling.as_ref().is_some_and(|sc| sc.flattens_at_cores.is_some()) => {
            "No tier: more cores do not raise the knee enough; run more server instances behind a load balancer.".into()
        }
        (_, Saturation::HotThread) => "No tier: more cores will not help a pinned thread.".into(),
        (_, Saturation::None) => "No tier: the limit is outside the container.".into(),
        (_, Saturation::Inconclusive) if s.scaling.is_none() => {
            "No tier: it is not known whether more cores help — measure two allotments with --cpus.".into()
        }
        _ if s.scaling.is_some() => {
            "No tier: no listed tier is known to hold them from the knees measured (see the predicted knees).".into()
        }
        _ => format!(
            "No listed tier has {} cores and {} GB: spread the load over several servers or ask for a larger plan.",
            num(s.cores_needed),
            gb(s.memory_needed_mb)
        ),
    }
}

fn allotted(cores: Option<f64>) -> String {
    cores.map_or("an unknown allotment".to_string(), cores_word)
}

fn saturation_line(s: &Sizing, j: &StageServer, cores: Option<f64>) -> String {
    let n = j.speakers;
    let peaks = format!(
        "p95 {}, p99 {}, max {} cores",
        num(j.cpu_cores_p95),
        num(j.cpu_cores_p99),
        num(j.cpu_cores_max)
    );
    match s.saturated {
        Saturation::Memory => format!(
            "Memory is the limit: peak {} MB at {n} speakers is at least {} of the {} MB limit; more cores will not help.",
            num(j.memory_mb_max),
            pct(SATURATION_SHARE),
            s.current_memory_mb.map_or("?".to_string(), num)
        ),
        Saturation::HotThread => {
            let name = j.hot_thread_name.as_deref().unwrap_or("the busiest thread");
            let procs = s.processes_needed.map_or("more".to_string(), |p| p.to_string());
            format!(
                "One thread ({name}) is pinned at {} of a core at {n} speakers while the process uses only {} of {} (< {}): more cores will not raise the knee; more server processes or instances will ({procs} for {} speakers).",
                core_pct(j.hot_thread_p95.unwrap_or(0.0)),
                num(j.cpu_cores_p95),
                allotted(cores),
                pct(HOT_THREAD_PROCESS_SHARE),
                sized_for(s)
            )
        }
        Saturation::Throttling => format!(
            "The CPU quota is the limit: {} of scheduler periods were throttled at {n} speakers (≥ {}), so replies stall in bursts ({peaks} of {}).",
            pct(j.throttled_ratio_max.unwrap_or(0.0)),
            pct(THROTTLED_SATURATION),
            allotted(cores)
        ),
        Saturation::Cpu => match j.cpu_burst_share {
            Some(b) => format!(
                "CPU is the limit: cpu (bursts: {} of seconds ≥ {} of {}) at {n} speakers ({peaks}).",
                pct(b),
                pct(SATURATION_SHARE),
                allotted(cores)
            ),
            None => format!(
                "CPU is the limit: per-second p95 at {n} speakers is at least {} of {} ({peaks}).",
                pct(SATURATION_SHARE),
                allotted(cores)
            ),
        },
        Saturation::None => format!(
            "Nothing in the container saturated at {n} speakers (CPU {peaks}: p99 under {} of {}, no hot thread; peak memory {} MB): the limit is outside it, e.g. a slow AI provider (speech recognition, LLM, TTS) or the network; a bigger container will not help.",
            pct(CLEARLY_IDLE_SHARE),
            allotted(cores),
            num(j.memory_mb_max)
        ),
        Saturation::SerialPart => serial_part_line(s, j, cores),
        Saturation::Inconclusive if s.scaling.is_some() => format!(
            "At {n} speakers the CPU peaks ({peaks} of {}) are neither saturated nor clearly idle; the knees measured at several allotments decide (below).",
            allotted(cores)
        ),
        Saturation::Inconclusive if cores.is_none() => format!(
            "Inconclusive — the CPU allotment is unknown, so the CPU peaks at {n} speakers ({peaks}) cannot be judged: give --server-cpus, or measure two allotments with --cpus."
        ),
        Saturation::Inconclusive => format!(
            "Inconclusive — measure two allotments with --cpus: at {n} speakers the CPU peaks ({peaks} of {}, {} of seconds ≥ {}) are neither saturated (≥ {} of seconds) nor clearly idle (p99 < {}).",
            allotted(cores),
            pct(j.cpu_burst_share.unwrap_or(0.0)),
            pct(SATURATION_SHARE),
            pct(BURST_SATURATION),
            pct(CLEARLY_IDLE_SHARE)
        ),
    }
}

/// What the curve adds when the peaks stayed under the allotment: the
/// process stopped using its cores before the SLOs broke (a serial part).
fn serial_part_line(s: &Sizing, j: &StageServer, cores: Option<f64>) -> String {
    let usl = s.scaling.as_ref().and_then(|sc| sc.usl);
    let sigma = usl.map_or(0.0, |u| u.sigma);
    let thread = match (&j.hot_thread_name, j.hot_thread_p95) {
        (Some(name), Some(h)) => format!("; its busiest thread, {name}, at {} of a core", core_pct(h)),
        _ => String::new(),
    };
    let ceiling = usl
        .filter(|u| u.kappa == 0.0 && u.sigma > 0.0)
        .map_or(String::new(), |u| {
            format!(
                ", and no number of cores takes one process past about {:.0} speakers",
                u.lambda / u.sigma
            )
        });
    format!(
        "The server stops using its cores before the SLOs break: at {} it failed at {} speakers while using {} of them (CPU p95{thread}). A serial part limits it: σ = {} means about {} of each turn's work runs one piece at a time (e.g. on the one event loop every audio packet passes through), so each added core buys less{ceiling}.",
        allotted(cores),
        j.speakers,
        num(j.cpu_cores_p95),
        num(sigma),
        pct(sigma)
    )
}

fn memory_line(s: &Sizing) -> String {
    let peak = num(s.peak_memory_mb);
    let Some(limit) = s.current_memory_mb.filter(|l| *l > 0.0) else {
        return format!("Peak memory {peak} MB; no memory limit known.");
    };
    let band = match s.memory_band {
        MemoryBand::Safe => "safe",
        MemoryBand::Elevated => "elevated",
        MemoryBand::Warning => "warning",
        MemoryBand::Danger => "danger: the OOM killer is near",
        MemoryBand::Unknown => "unknown",
    };
    format!(
        "Peak memory {peak} MB is {} of the {} MB limit: {band}.",
        pct(s.peak_memory_mb / limit),
        num(limit)
    )
}

/// A fitted per-speaker figure, shown only when its spread is smaller than
/// it; otherwise the reason it is left out.
fn fitted(what: &str, value: f64, spread: Option<f64>, unit: &str) -> Result<String, String> {
    match spread {
        // It prints as 0: the stages could not tell the cost from nothing.
        _ if num(value) == "0" => Err(format!("{what} (too small to measure at these loads)")),
        Some(d) if d < value => Ok(format!("{} {unit} ± {}", num(value), num(d))),
        Some(d) => Err(format!(
            "{what} ({} ± {}: the spread is larger than the figure)",
            num(value),
            num(d)
        )),
        None => Err(format!("{what} (fewer than 3 stages: no spread to judge it by)")),
    }
}

/// The cost lines: fitted per-speaker figures that are more than noise,
/// the ones left out and why, what the stages measured directly, and how
/// the needs were computed.
fn cost_lines(s: &Sizing) -> Vec<String> {
    let c = &s.per_speaker;
    let (mut shown, mut left_out) = (Vec::new(), Vec::new());
    for r in [
        fitted("cores per speaker", c.cores_per_speaker, c.cores_spread, "cores"),
        match c.mb_per_device {
            Some(dev) => Ok(format!(
                "{} MB per connected device (idle or talking) plus {} MB per speaker",
                num(dev),
                num(c.mb_per_speaker)
            )),
            None => fitted("MB per speaker", c.mb_per_speaker, c.mb_spread, "MB"),
        },
    ] {
        match r {
            Ok(v) => shown.push(v),
            Err(why) => left_out.push(why),
        }
    }
    let mut lines = Vec::new();
    if !shown.is_empty() {
        lines.push(format!(
            "Each concurrent speaker costs about {}, over a baseline of {} cores / {} MB.",
            shown.join(" and "),
            num(c.baseline_cores),
            num(c.baseline_mb)
        ));
    }
    if !left_out.is_empty() {
        lines.push(format!("Left out as noise: {}.", left_out.join("; ")));
    }
    let mut direct = Vec::new();
    if let Some(cpt) = c.cpu_seconds_per_turn {
        direct.push(format!("a turn costs {} CPU-seconds", num(cpt)));
    }
    if let Some(m) = c.memory_step {
        direct.push(format!(
            "peak memory grew {} MB per speaker from {} to {} speakers",
            num(m.mb_per_speaker),
            m.from_speakers,
            m.to_speakers
        ));
    }
    if !direct.is_empty() {
        lines.push(format!("Measured directly: {}.", direct.join("; ")));
    }
    let cores_from = if s.scaling.is_some() {
        "cores from the knees measured at several allotments, memory"
    } else {
        "needs"
    };
    lines.push(format!(
        "For {} speakers: {cores_from} = (baseline + fitted cost × speakers) × {HEADROOM} headroom, rounded up to 0.5 core and 64 MB.",
        sized_for(s)
    ));
    lines
}

/// The figures each verdict line stands on ([`Sizing::evidence`]).
pub(super) fn evidence(s: &Sizing, j: &StageServer, cores: Option<f64>) -> Vec<String> {
    let mut out = vec![format!(
        "knee: {} speakers passed{} ({} shape, largest stage {} speakers)",
        s.knee,
        s.first_fail
            .map_or(", no stage failed".into(), |f| format!(", {f} failed")),
        if s.shape.is_empty() { "steady" } else { &s.shape },
        s.max_measured_speakers
    )];
    let mut sat = format!(
        "saturation at {} speakers: CPU p95 {}, p99 {}, max {} cores of {}",
        j.speakers,
        num(j.cpu_cores_p95),
        num(j.cpu_cores_p99),
        num(j.cpu_cores_max),
        allotted(cores)
    );
    if let Some(b) = j.cpu_burst_share {
        sat.push_str(&format!("; {} of seconds ≥ {} of it", pct(b), pct(SATURATION_SHARE)));
    }
    if let (Some(h), Some(name)) = (j.hot_thread_p95, &j.hot_thread_name) {
        sat.push_str(&format!("; busiest thread {name} p95 {} of a core", core_pct(h)));
    }
    if let Some(t) = j.throttled_ratio_max {
        sat.push_str(&format!("; {} of periods throttled", pct(t)));
    }
    sat.push_str(&format!("; peak memory {} MB", num(j.memory_mb_max)));
    out.push(sat);
    out.extend(super::text_scaling::evidence(s));
    let c = &s.per_speaker;
    let cores_from = match &s.scaling {
        Some(_) => "from the knees by allotment".to_string(),
        None => format!(
            "fit {} + {} × T, × {HEADROOM}",
            num(c.baseline_cores),
            num(c.cores_per_speaker)
        ),
    };
    out.push(format!(
        "need for {} speakers: cores {} ({cores_from}), memory {} MB (fit {} MB + {} MB/device + {} MB/speaker, × {HEADROOM})",
        sized_for(s),
        num(s.cores_needed),
        num(s.memory_needed_mb),
        num(c.baseline_mb),
        c.mb_per_device.map_or("?".into(), num),
        num(c.mb_per_speaker)
    ));
    out
}

/// The operator's text: one headline, then the explanation lines.
pub fn render_text(s: &Sizing) -> String {
    let here = limits(s.current_cores, s.current_memory_mb).unwrap_or("This server (allotment unknown)".into());
    let slo = if s.slo_summary.is_empty() {
        "within the SLOs".to_string()
    } else {
        format!("at {}", s.slo_summary)
    };
    let shape = if s.shape.is_empty() { "steady" } else { &s.shape };
    let mut out = match &s.scaling {
        Some(sc) => format!(
            "Knee by CPU allotment ({shape} load, {slo}): {}.",
            sc.points
                .iter()
                .map(|p| format!("{} → {}", cores_word(p.cores), p.knee))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => format!("{here} holds {} concurrent speakers ({shape} load) {slo}.", s.knee),
    };
    if let (Some(t), Some(v)) = (s.target_speakers, s.verdict) {
        let verdict = match v {
            Verdict::Sufficient => "SUFFICIENT",
            Verdict::Insufficient => "INSUFFICIENT",
        };
        let reach = if s.extrapolation <= 1.0 {
            "within measured load".to_string()
        } else {
            format!("{:.1}× beyond measured load", s.extrapolation)
        };
        let failed = match (v, s.first_fail.filter(|f| *f <= t)) {
            (Verdict::Insufficient, Some(f)) => format!(" — {f} speakers failed there"),
            _ => String::new(),
        };
        out.push_str(&format!(
            " {t} speakers at {}: Verdict: {verdict}{failed} (confidence: {}, {reach}); {}.",
            verdict_place(s),
            s.confidence,
            need(s)
        ));
    }
    out.push('\n');
    for line in &s.explanation {
        out.push_str("- ");
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Which allotment the verdict word is about (never a tier's).
fn verdict_place(s: &Sizing) -> String {
    match (limits(s.current_cores, s.current_memory_mb), s.verdict_cores) {
        (Some(here), _) => format!("{here} (the server's allotment)"),
        (None, Some(c)) => format!("{}, as measured (the server's own allotment is unknown)", cores_word(c)),
        (None, None) => "the measured allotment (the server's own is unknown)".into(),
    }
}

fn need(s: &Sizing) -> String {
    let flat = s.scaling.as_ref().is_some_and(|sc| sc.flattens_at_cores.is_some());
    let unknown_supply = s.current_cores.is_none() && s.current_memory_mb.is_none();
    if let (Some(Verdict::Insufficient), Some(name), true) = (s.verdict, &s.tier, unknown_supply) {
        let spec = limits(s.tier_cores, s.tier_memory_gb.map(|g| g * 1024.0)).unwrap_or_default();
        return format!(
            "predicted to hold at {} cores / {} GB, inside the {name} tier ({spec})",
            num(s.cores_needed),
            gb(s.memory_needed_mb)
        );
    }
    match (s.saturated, s.processes_needed, &s.tier) {
        (_, Some(p), None) if flat || s.saturated == Saturation::HotThread => {
            format!("need {p} server processes or instances (more cores will not help)")
        }
        (_, _, Some(name)) => {
            let spec = limits(s.tier_cores, s.tier_memory_gb.map(|g| g * 1024.0)).unwrap_or_default();
            format!(
                "need about {} cores / {} GB → {name} ({spec})",
                num(s.cores_needed),
                gb(s.memory_needed_mb)
            )
        }
        (_, _, None) if s.verdict == Some(Verdict::Sufficient) => "the current allotment holds them".into(),
        (Saturation::None, ..) if s.scaling.is_none() => {
            "the limit is outside the container (e.g. a slow AI provider), so a bigger one will not help".into()
        }
        (Saturation::Inconclusive, ..) if s.scaling.is_none() => {
            "inconclusive — measure two allotments with --cpus to know whether more cores help".into()
        }
        _ => format!(
            "need about {} cores / {} GB, more than any listed tier",
            num(s.cores_needed),
            gb(s.memory_needed_mb)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::fitted;

    #[test]
    fn a_fitted_cost_is_shown_only_when_it_is_more_than_its_spread_and_than_nothing() {
        assert_eq!(
            fitted("MB per speaker", 0.87, Some(0.2), "MB"),
            Ok("0.87 MB ± 0.2".to_string())
        );
        assert_eq!(
            fitted("MB per speaker", 0.87, Some(12.38), "MB"),
            Err("MB per speaker (0.87 ± 12.38: the spread is larger than the figure)".to_string())
        );
        assert_eq!(
            fitted("cores per speaker", 0.0004, Some(0.0001), "cores"),
            Err("cores per speaker (too small to measure at these loads)".to_string())
        );
    }
}
