//! Operator wording of a [`Sizing`]: the explanation lines and the headline.
//!
//! This file owns only words and number formatting; every decision is made
//! in the parent module and read back from the [`Sizing`] here.

use super::{
    HEADROOM, HOT_THREAD_PROCESS_SHARE, MemoryBand, SATURATION_SHARE, Saturation, Sizing, StageServer,
    THROTTLED_SATURATION, Verdict,
};

/// The speaker count the needs were computed for.
fn sized_for(s: &Sizing) -> u32 {
    s.target_speakers.unwrap_or(s.knee.max(1))
}

/// Up to two decimals, trailing zeros dropped: 7.5 → "7.5", 4.0 → "4".
fn num(v: f64) -> String {
    let text = format!("{v:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Megabytes as gigabytes, one decimal: 9408 → "9.2", 8192 → "8".
fn gb(mb: f64) -> String {
    let text = format!("{:.1}", mb / 1024.0);
    text.trim_end_matches(".0").to_string()
}

fn pct(share: f64) -> String {
    format!("{:.0}%", share * 100.0)
}

fn limits(cores: Option<f64>, memory_mb: Option<f64>) -> Option<String> {
    match (cores, memory_mb) {
        (Some(c), Some(m)) => Some(format!("{} cores / {} GB", num(c), gb(m))),
        (Some(c), None) => Some(format!("{} cores", num(c))),
        (None, Some(m)) => Some(format!("{} GB", gb(m))),
        (None, None) => None,
    }
}

/// The explanation lines stored in [`Sizing::explanation`].
pub(super) fn explain(s: &Sizing, judged: &StageServer) -> Vec<String> {
    let mut lines = Vec::new();
    if s.first_fail.is_none() {
        lines.push(format!(
            "No stage failed; judged at the largest stage ({} speakers), so the knee may be higher.",
            judged.speakers
        ));
    }
    lines.push(saturation_line(s, judged));
    lines.push(memory_line(s));
    lines.push(cost_line(s));
    let target = sized_for(s);
    if s.target_speakers.is_none() {
        lines.push(format!(
            "No target given: sized for the measured knee ({target} speakers) with {HEADROOM}× headroom."
        ));
    }
    if let Some(fail) = s.first_fail.filter(|f| *f <= target) {
        lines.push(format!(
            "Measured: {fail} speakers already failed the SLOs here, so {target} cannot be held as is."
        ));
    }
    if s.tier.is_none() {
        lines.push(format!(
            "No listed tier has {} cores and {} GB: spread the load over several servers or ask for a larger plan.",
            num(s.cores_needed),
            gb(s.memory_needed_mb)
        ));
    }
    if s.confidence == "low" {
        lines.push(format!(
            "{target} speakers is {:.1}× the largest measured stage: the figures are extrapolated; rerun with more speakers to confirm.",
            s.extrapolation
        ));
    }
    if s.current_cores.is_none() && s.current_memory_mb.is_none() {
        lines.push("No allotment or \"current\" tier known: only the measured knee was checked.".into());
    }
    lines
}

fn saturation_line(s: &Sizing, j: &StageServer) -> String {
    let n = j.speakers;
    let cores = s.current_cores.map_or("?".to_string(), num);
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
                "One thread ({name}) is pinned at {} of a core at {n} speakers while the process uses only {} of {cores} cores (< {}): more cores will not raise the knee; more server processes or instances will ({procs} for {} speakers).",
                pct(j.hot_thread_p95.unwrap_or(0.0)),
                num(j.cpu_cores_p95),
                pct(HOT_THREAD_PROCESS_SHARE),
                sized_for(s)
            )
        }
        Saturation::Throttling => format!(
            "The CPU quota is the limit: {} of scheduler periods were throttled at {n} speakers (≥ {}), so replies stall in bursts even though average CPU ({} of {cores} cores at p95) looks lower.",
            pct(j.throttled_ratio_max.unwrap_or(0.0)),
            pct(THROTTLED_SATURATION),
            num(j.cpu_cores_p95)
        ),
        Saturation::Cpu => format!(
            "CPU is the limit: p95 {} of {cores} cores at {n} speakers (≥ {}).",
            num(j.cpu_cores_p95),
            pct(SATURATION_SHARE)
        ),
        Saturation::None => format!(
            "Nothing in the container is saturated at {n} speakers (CPU p95 {} cores, peak memory {} MB): the limit is outside it, e.g. a slow AI provider (speech recognition, LLM, TTS) or the network; a bigger container will not help.",
            num(j.cpu_cores_p95),
            num(j.memory_mb_max)
        ),
    }
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

fn cost_line(s: &Sizing) -> String {
    let c = &s.per_speaker;
    let spread = |v: Option<f64>| {
        v.map_or(" (spread unknown: fewer than 3 stages)".into(), |d| {
            format!(" ± {}", num(d))
        })
    };
    let mut line = format!(
        "Each concurrent speaker costs about {} cores{} and {} MB{}, over a baseline of {} cores / {} MB; needs = (baseline + cost × {} speakers) × {HEADROOM} headroom, rounded up to 0.5 core and 64 MB.",
        num(c.cores_per_speaker),
        spread(c.cores_spread),
        num(c.mb_per_speaker),
        spread(c.mb_spread),
        num(c.baseline_cores),
        num(c.baseline_mb),
        sized_for(s),
    );
    if let Some(cpt) = c.cpu_seconds_per_turn {
        line.push_str(&format!(" A turn costs {} CPU-seconds.", num(cpt)));
    }
    if let Some(dev) = c.mb_per_device {
        line.push_str(&format!(" Each connected device holds {} MB.", num(dev)));
    }
    line
}

/// The operator's text: one headline, then the explanation lines.
pub fn render_text(s: &Sizing) -> String {
    let here = limits(s.current_cores, s.current_memory_mb).unwrap_or("This server".into());
    let slo = if s.slo_summary.is_empty() {
        "within the SLOs".to_string()
    } else {
        format!("at {}", s.slo_summary)
    };
    let target = sized_for(s);
    let outside = s.saturated == Saturation::None && s.first_fail.is_some_and(|f| f <= target);
    let need = match (s.saturated, s.processes_needed) {
        (Saturation::HotThread, Some(p)) if target > s.knee => {
            format!("{target} speakers need {p} server processes or instances (more cores will not help)")
        }
        _ if outside => format!(
            "{target} speakers would fit in about {} cores / {} GB, but the limit is outside the container (e.g. a slow AI provider), so a bigger one will not help",
            num(s.cores_needed),
            gb(s.memory_needed_mb)
        ),
        _ => {
            let tier = match (&s.tier, limits(s.tier_cores, s.tier_memory_gb.map(|g| g * 1024.0))) {
                (Some(name), Some(spec)) => format!("{name} ({spec})"),
                _ => "no listed tier fits".to_string(),
            };
            format!(
                "{target} speakers need about {} cores / {} GB → {tier}",
                num(s.cores_needed),
                gb(s.memory_needed_mb)
            )
        }
    };
    let verdict = match s.verdict {
        Verdict::Sufficient => "SUFFICIENT",
        Verdict::Insufficient => "INSUFFICIENT",
    };
    let reach = if s.extrapolation <= 1.0 {
        "within measured load".to_string()
    } else {
        format!("{:.1}× beyond measured load", s.extrapolation)
    };
    let mut out = format!(
        "{here} holds {} concurrent speakers {slo}; {need}. Verdict: {verdict} (confidence: {}, {reach})\n",
        s.knee, s.confidence
    );
    for line in &s.explanation {
        out.push_str("- ");
        out.push_str(line);
        out.push('\n');
    }
    out
}
