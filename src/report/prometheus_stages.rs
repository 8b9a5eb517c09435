//! The stage families of `/metrics`: which stage is being measured (its
//! name, and for a capacity search its speakers, CPU allotment and load
//! shape as labels), and every finished capacity stage as a point of the
//! knee curve, labelled the same way, so a scrape at any time carries the
//! curve so far and equals the capacity report's stages.

use super::feed::{StageInfo, StagePoint};
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

type Enc<'a, 'b> = &'a mut DescriptorEncoder<'b>;

/// A stage's labels: index, name, speakers, CPU allotment (empty: not set)
/// and shape. Empty values mean "not a capacity stage".
fn labels(name: &str, s: Option<&StageInfo>) -> [(&'static str, String); 5] {
    let s = s.cloned().unwrap_or_default();
    let or_empty = |v: u32| if v == 0 { String::new() } else { v.to_string() };
    [
        ("stage", name.to_string()),
        ("index", or_empty(s.index)),
        ("speakers", or_empty(s.speakers)),
        ("cpus", s.cpus.map_or(String::new(), |c| c.to_string())),
        ("shape", s.shape),
    ]
}

/// `xiaozhi_fleet_stage{stage,index,speakers,cpus,shape} 1` for the stage
/// being measured: a step plan's stage (`name`) or a capacity stage.
pub fn stage_info(e: Enc, name: Option<&str>, step: Option<&StageInfo>) -> std::fmt::Result {
    let mut enc = e.encode_descriptor(
        "stage",
        "The stage being measured (1 on its labels: name; for capacity, speakers, CPU allotment, shape)",
        None,
        MetricType::Gauge,
    )?;
    let name = name.map(str::to_string).or(step.map(|s| s.label.clone()));
    if let Some(name) = name {
        let l = labels(&name, step);
        ConstGauge::new(1i64).encode(enc.encode_family(&l)?)?;
    }
    Ok(())
}

/// One gauge family over the finished capacity stages.
fn per_stage(
    e: Enc,
    (name, help, unit): (&str, &str, Option<&Unit>),
    knee: &[StagePoint],
    value: impl Fn(&StagePoint) -> Option<f64>,
) -> std::fmt::Result {
    if knee.is_empty() {
        return Ok(());
    }
    let mut enc = e.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    for p in knee {
        let Some(v) = value(p) else { continue };
        let mut l = labels(&p.stage.label, Some(&p.stage)).to_vec();
        l.push(("status", p.status.clone()));
        ConstGauge::new(v).encode(enc.encode_family(&l)?)?;
    }
    Ok(())
}

/// The finished capacity stages (the knee curve so far), one series each.
pub fn knee(e: Enc, knee: &[StagePoint]) -> std::fmt::Result {
    let help = "Finished capacity stages (the knee curve so far)";
    per_stage(e, ("capacity_stage_turns_completed", help, None), knee, |p| {
        Some(p.turns_completed as f64)
    })?;
    per_stage(e, ("capacity_stage_turns_failed", help, None), knee, |p| {
        Some(p.turns_failed as f64)
    })?;
    per_stage(
        e,
        ("capacity_stage_first_audio_p95", help, Some(&Unit::Seconds)),
        knee,
        |p| p.first_audio_p95_ms.map(|ms| ms / 1000.0),
    )?;
    per_stage(e, ("capacity_stage_stutter_ratio", help, None), knee, |p| {
        Some(p.stutter_ratio)
    })?;
    per_stage(e, ("capacity_stage_server_cpu_p95_cores", help, None), knee, |p| {
        p.server_cpu_p95
    })
}
