//! `xiaozhi-fleet merge`: several run reports (shards of one test, run on
//! several machines) into one, exactly. Counts add; every percentile object
//! is recomputed from the merged histogram behind it (see [`super::exact`]);
//! ratios are recomputed from the added counts; per-second series are
//! aligned on wall-clock time (each report's `started_at`, to the second).
//! What cannot be merged honestly is left out and listed in `merge_notes`.

use super::exact::{SEND_LAG, latency_key};
use super::slo::check;
use super::timeline::LatencyPoint;
use crate::capacity::slo::{Slo, StageMeasure};
use crate::metrics::{LATENCY_METRICS, LatencyHistogram, Percentiles, ratio};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("merge needs at least two reports")]
    TooFew,
    #[error("{file}: {reason}")]
    Unmergeable { file: String, reason: String },
}

/// One input report.
pub struct Shard {
    pub file: String,
    pub report: Value,
    /// `started_at`, in whole seconds since the epoch.
    start: u64,
}

/// Sections merged by rule; any other top-level key is kept only when all
/// reports agree on it.
const KNOWN: &[&str] = &[
    "schema_version",
    "tool",
    "run",
    "turns",
    "latency_ms",
    "playback",
    "audio",
    "generator",
    "connections",
    "stages",
    "series",
    "server",
    "recordings",
    "slo",
    "latency_series",
    "histograms",
    "merged_from",
    "merge_notes",
];

impl Shard {
    pub fn new(file: &str, report: Value) -> Result<Shard, MergeError> {
        let bad = |reason: &str| MergeError::Unmergeable {
            file: file.to_string(),
            reason: reason.to_string(),
        };
        if report.get("capacity").is_some() {
            return Err(bad("a capacity search's report; merge takes run reports"));
        }
        if report.get("schema_version").and_then(Value::as_u64) != Some(super::SCHEMA_VERSION as u64) {
            return Err(bad("not a schema_version 1 report"));
        }
        if report
            .get("histograms")
            .and_then(Value::as_object)
            .is_none_or(|h| h.is_empty())
        {
            return Err(bad(
                "has no histograms (written by an older version?), so it cannot be merged exactly",
            ));
        }
        let started = report.pointer("/run/started_at").and_then(Value::as_str).unwrap_or("");
        let start = humantime::parse_rfc3339(started)
            .map_err(|e| bad(&format!("run.started_at `{started}`: {e}")))?
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Ok(Shard {
            file: file.to_string(),
            report,
            start,
        })
    }
}

fn hists(v: &Value, file: &str) -> Result<BTreeMap<String, LatencyHistogram>, MergeError> {
    let Some(obj) = v.get("histograms").and_then(Value::as_object) else {
        return Ok(BTreeMap::new());
    };
    obj.iter()
        .map(|(k, h)| {
            serde_json::from_value(h.clone())
                .map(|h| (k.clone(), h))
                .map_err(|e| MergeError::Unmergeable {
                    file: file.to_string(),
                    reason: format!("histogram {k}: {e}"),
                })
        })
        .collect()
}

fn merge_hists(into: &mut BTreeMap<String, LatencyHistogram>, from: BTreeMap<String, LatencyHistogram>) {
    for (k, h) in from {
        into.entry(k).or_default().merge(&h);
    }
}

/// Adds `b` into `a`: integers add, arrays concatenate, objects merge by
/// key; differing non-integers become null (recomputed by the caller where
/// a rule exists); equal values stay.
pub fn add_counts(a: &mut Value, b: &Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, vb) in b {
                match a.get_mut(k) {
                    Some(va) => add_counts(va, vb),
                    None => {
                        a.insert(k.clone(), vb.clone());
                    }
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => a.extend(b.iter().cloned()),
        (a @ Value::Number(_), Value::Number(nb)) => {
            let na = a.as_number().cloned();
            *a = match (
                na.as_ref().and_then(|n| n.as_u64()),
                nb.as_u64(),
                na.as_ref().and_then(|n| n.as_i64()),
                nb.as_i64(),
            ) {
                (Some(x), Some(y), _, _) => json!(x + y),
                (_, _, Some(x), Some(y)) => json!(x + y),
                _ if na.as_ref() == Some(nb) => Value::Number(nb.clone()),
                _ => Value::Null,
            };
        }
        (a, b) => {
            if a.is_null() {
                *a = b.clone();
            }
        }
    }
}

/// Failure details concatenated from several shards: distinct ones only,
/// at most as many as one run keeps.
fn cap_details(section: &mut Value) {
    let Some(details) = section.get_mut("failure_details").and_then(Value::as_object_mut) else {
        return;
    };
    for list in details.values_mut() {
        if let Value::Array(items) = list {
            let mut seen = Vec::new();
            items.retain(|d| {
                let keep = !seen.contains(d) && seen.len() < crate::metrics::collector::KEPT_FAILURE_DETAILS;
                if keep {
                    seen.push(d.clone());
                }
                keep
            });
        }
    }
}

fn pct(h: &BTreeMap<String, LatencyHistogram>, key: &str) -> Value {
    json!(h.get(key).map(|h| h.percentiles()).unwrap_or_default())
}

fn sum_section(shards: &[Shard], key: &str) -> Value {
    let mut out = Value::Null;
    for s in shards {
        if let Some(v) = s.report.get(key) {
            add_counts(&mut out, v);
        }
    }
    out
}

fn ratio_of(v: &Value, part: &str, whole: &str) -> Value {
    let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    json!(ratio(n(part), n(whole)))
}

/// Turns, latency and playback of merged counts and histograms.
fn measured(out: &mut Map<String, Value>, turns: Value, playback: Value, h: &BTreeMap<String, LatencyHistogram>) {
    let mut turns = turns;
    if turns.is_object() {
        turns["failed_ratio"] = ratio_of(&turns, "failed", "started");
    }
    let latency: Map<String, Value> = LATENCY_METRICS
        .iter()
        .map(|m| (m.to_string(), pct(h, &latency_key(m))))
        .collect();
    let mut playback = playback;
    if playback.is_object() {
        playback["stutter_ratio"] = ratio_of(&playback, "stutter_turns", "turns");
        playback["underrun_ms"] = pct(h, super::exact::UNDERRUN);
        playback["sentence_gap_ms"] = pct(h, super::exact::SENTENCE_GAP);
    }
    out.insert("turns".into(), turns);
    out.insert("latency_ms".into(), Value::Object(latency));
    out.insert("playback".into(), playback);
    out.insert("histograms".into(), serde_json::to_value(h).unwrap_or_default());
}

/// Merges run reports; see the module docs.
pub fn merge(shards: &[Shard]) -> Result<Value, MergeError> {
    if shards.len() < 2 {
        return Err(MergeError::TooFew);
    }
    let start = shards.iter().map(|s| s.start).min().unwrap_or(0);
    let mut h = BTreeMap::new();
    for s in shards {
        merge_hists(&mut h, hists(&s.report, &s.file)?);
    }
    let mut notes: Vec<String> = Vec::new();
    let mut out = Map::new();
    out.insert("schema_version".into(), json!(super::SCHEMA_VERSION));
    out.insert(
        "tool".into(),
        serde_json::to_value(super::Tool::this()).unwrap_or_default(),
    );
    out.insert("run".into(), run(shards, start));
    let (mut turns, mut playback) = (sum_section(shards, "turns"), sum_section(shards, "playback"));
    let sections = shards.iter().filter_map(|s| s.report.get("playback"));
    super::stutter::merge_causes(&mut turns, &mut playback, sections, &h);
    measured(&mut out, turns, playback, &h);
    out.insert("audio".into(), sum_section(shards, "audio"));
    out.insert("generator".into(), generator(shards, &h));
    let mut connections = sum_section(shards, "connections");
    cap_details(&mut connections);
    out.insert("connections".into(), connections);
    if let Some(turns) = out.get_mut("turns") {
        cap_details(turns);
    }
    out.insert("stages".into(), stages(shards, start)?);
    let latency_series = latency_series(shards, start)?;
    out.insert("series".into(), series(shards, start, &latency_series));
    out.insert(
        "latency_series".into(),
        serde_json::to_value(&latency_series).unwrap_or_default(),
    );
    out.insert("server".into(), server(shards, start, &mut notes));
    out.insert("recordings".into(), sum_section(shards, "recordings"));
    if let Some(slo) = slo(shards, &out) {
        out.insert("slo".into(), slo);
    }
    out.insert(
        "merged_from".into(),
        json!(
            shards
                .iter()
                .map(|s| json!({
                    "file": s.file,
                    "started_at": s.report.pointer("/run/started_at"),
                    "duration_s": s.report.pointer("/run/duration_s"),
                    "devices": s.report.pointer("/run/devices"),
                    "interrupted": s.report.pointer("/run/interrupted"),
                    "generator_valid": s.report.pointer("/generator/valid"),
                }))
                .collect::<Vec<_>>()
        ),
    );
    unknown_sections(shards, &mut out, &mut notes);
    out.insert("merge_notes".into(), json!(notes));
    Ok(Value::Object(out))
}

fn unknown_sections(shards: &[Shard], out: &mut Map<String, Value>, notes: &mut Vec<String>) {
    let Some(first) = shards[0].report.as_object() else {
        return;
    };
    for (k, v) in first.iter().filter(|(k, _)| !KNOWN.contains(&k.as_str())) {
        if shards.iter().all(|s| s.report.get(k) == Some(v)) {
            out.insert(k.clone(), v.clone());
        } else {
            notes.push(format!(
                "`{k}` differs between the reports and has no merge rule: left out"
            ));
        }
    }
}

fn rfc3339(secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

fn distinct(shards: &[Shard], ptr: &str) -> String {
    let mut seen: Vec<String> = Vec::new();
    for s in shards {
        let v = s.report.pointer(ptr).and_then(Value::as_str).unwrap_or("").to_string();
        if !seen.contains(&v) {
            seen.push(v);
        }
    }
    seen.join(", ")
}

fn run(shards: &[Shard], start: u64) -> Value {
    let f = |s: &Shard, p: &str| s.report.pointer(p).and_then(Value::as_f64).unwrap_or(0.0);
    let end = shards
        .iter()
        .map(|s| (s.start - start) as f64 + f(s, "/run/duration_s"))
        .fold(0.0, f64::max);
    let all = |p: &str| {
        shards
            .iter()
            .all(|s| s.report.pointer(p).and_then(Value::as_bool).unwrap_or(false))
    };
    let any = |p: &str| {
        shards
            .iter()
            .any(|s| s.report.pointer(p).and_then(Value::as_bool).unwrap_or(false))
    };
    json!({
        "target_url": distinct(shards, "/run/target_url"),
        "mock": all("/run/mock"),
        "started_at": rfc3339(start),
        "duration_s": (end * 1000.0).round() / 1000.0,
        "devices": shards.iter().map(shard_devices).sum::<u64>(),
        "seed": shards[0].report.pointer("/run/seed").cloned().unwrap_or(json!(0)),
        "interrupted": any("/run/interrupted"),
        "fleet": distinct(shards, "/run/fleet"),
    })
}

/// The devices a report's run drove: a shard's own share (`--shard`), or
/// the whole run's.
fn shard_devices(s: &Shard) -> u64 {
    s.report
        .pointer("/generator/shard/devices")
        .or_else(|| s.report.pointer("/run/devices"))
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

fn generator(shards: &[Shard], h: &BTreeMap<String, LatencyHistogram>) -> Value {
    let mut g = sum_section(shards, "generator");
    if !g.is_object() {
        return g;
    }
    let sum = |k: &str| {
        shards
            .iter()
            .filter_map(|s| s.report.pointer(&format!("/generator/{k}")).and_then(Value::as_f64))
            .sum::<f64>()
    };
    g["cpu_percent"] = json!((sum("cpu_percent") * 10.0).round() / 10.0);
    g["rss_mb"] = json!((sum("rss_mb") * 10.0).round() / 10.0);
    g["valid"] = json!(shards.iter().all(|s| {
        s.report
            .pointer("/generator/valid")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }));
    g["send_lag_ms"] = pct(h, SEND_LAG);
    g
}

fn at(s: &Shard, start: u64, t: f64) -> f64 {
    (s.start - start) as f64 + t
}

fn stages(shards: &[Shard], start: u64) -> Result<Value, MergeError> {
    let mut order: Vec<String> = Vec::new();
    let mut groups: BTreeMap<String, Vec<(&Shard, &Value)>> = BTreeMap::new();
    for s in shards {
        for st in s.report.get("stages").and_then(Value::as_array).into_iter().flatten() {
            let name = st.get("name").and_then(Value::as_str).unwrap_or("").to_string();
            if !order.contains(&name) {
                order.push(name.clone());
            }
            groups.entry(name).or_default().push((s, st));
        }
    }
    let mut out = Vec::new();
    for name in order {
        let group = &groups[&name];
        let mut h = BTreeMap::new();
        let (mut turns, mut playback) = (Value::Null, Value::Null);
        let (mut from, mut dur, mut speakers) = (f64::MAX, 0.0f64, 0u64);
        for (s, st) in group {
            merge_hists(&mut h, hists(st, &s.file)?);
            add_counts(&mut turns, st.get("turns").unwrap_or(&Value::Null));
            add_counts(&mut playback, st.get("playback").unwrap_or(&Value::Null));
            from = from.min(at(
                s,
                start,
                st.get("started_at").and_then(Value::as_f64).unwrap_or(0.0),
            ));
            dur = dur.max(st.get("duration_s").and_then(Value::as_f64).unwrap_or(0.0));
            speakers += st.get("speakers").and_then(Value::as_u64).unwrap_or(0);
        }
        let mut m = Map::new();
        m.insert("name".into(), json!(name));
        m.insert("speakers".into(), json!(speakers));
        m.insert("started_at".into(), json!(from));
        m.insert("duration_s".into(), json!(dur));
        let sections = group.iter().filter_map(|(_, st)| st.get("playback"));
        super::stutter::merge_causes(&mut turns, &mut playback, sections, &h);
        measured(&mut m, turns, playback, &h);
        m.insert("server".into(), Value::Null);
        out.push(Value::Object(m));
    }
    Ok(Value::Array(out))
}

fn latency_series(shards: &[Shard], start: u64) -> Result<Vec<LatencyPoint>, MergeError> {
    let mut by_t: BTreeMap<u64, LatencyPoint> = BTreeMap::new();
    for s in shards {
        let points: Vec<LatencyPoint> =
            serde_json::from_value(s.report.get("latency_series").cloned().unwrap_or(json!([]))).map_err(|e| {
                MergeError::Unmergeable {
                    file: s.file.clone(),
                    reason: format!("latency_series: {e}"),
                }
            })?;
        for mut p in points {
            p.t_s = at(s, start, p.t_s);
            by_t.entry(p.t_s.round() as u64)
                .or_insert_with(|| LatencyPoint {
                    t_s: p.t_s,
                    ..LatencyPoint::default()
                })
                .absorb(&p);
        }
    }
    Ok(by_t.into_values().collect())
}

fn series(shards: &[Shard], start: u64, latency: &[LatencyPoint]) -> Value {
    let mut by_t: BTreeMap<u64, Value> = BTreeMap::new();
    for s in shards {
        for p in s.report.get("series").and_then(Value::as_array).into_iter().flatten() {
            let t = at(s, start, p.get("t_s").and_then(Value::as_f64).unwrap_or(0.0)).round();
            let slot = by_t
                .entry(t as u64)
                .or_insert_with(|| json!({"t_s": t, "connected": 0, "talking": 0, "turns": 0, "failed": 0}));
            for k in ["connected", "talking", "turns", "failed"] {
                let sum = slot[k].as_i64().unwrap_or(0) + p.get(k).and_then(Value::as_i64).unwrap_or(0);
                slot[k] = json!(sum);
            }
        }
    }
    for (t, slot) in by_t.iter_mut() {
        let p95 = latency
            .iter()
            .find(|p| p.t_s.round() as u64 == *t && p.first_audio_ms.count > 0)
            .map(|p| p.first_audio_ms.p95);
        slot["first_audio_p95_ms"] = json!(p95);
    }
    json!(by_t.into_values().collect::<Vec<_>>())
}

fn server(shards: &[Shard], start: u64, notes: &mut Vec<String>) -> Value {
    let watched: Vec<&Shard> = shards
        .iter()
        .filter(|s| s.report.get("server").is_some_and(|v| !v.is_null()))
        .collect();
    let Some(first) = watched.first() else {
        return Value::Null;
    };
    if watched.len() > 1 {
        notes.push(format!(
            "server: {} reports watched a server; kept {}'s (one server's samples are not added to another's)",
            watched.len(),
            first.file
        ));
    }
    let mut srv = first.report["server"].clone();
    let shift = (first.start - start) as f64;
    for key in ["samples", "events"] {
        if let Some(items) = srv.get_mut(key).and_then(Value::as_array_mut) {
            for it in items {
                if let Some(t) = it.get("t_s").and_then(Value::as_f64) {
                    it["t_s"] = json!(t + shift);
                }
            }
        }
    }
    srv
}

/// The union of the reports' SLO rules, checked against the merged run.
fn slo(shards: &[Shard], out: &Map<String, Value>) -> Option<Value> {
    let mut rules: Vec<Slo> = Vec::new();
    for s in shards {
        for c in s
            .report
            .pointer("/slo/checks")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(rule) = c.get("rule").and_then(Value::as_str).and_then(|r| Slo::parse(r).ok())
                && !rules.contains(&rule)
            {
                rules.push(rule);
            }
        }
    }
    if rules.is_empty() {
        return None;
    }
    let lat: BTreeMap<String, Percentiles> = serde_json::from_value(out["latency_ms"].clone()).unwrap_or_default();
    let f = |p: &str| {
        out.get(p.split('/').nth(1)?)
            .and_then(|v| v.pointer(&format!("/{}", p.split('/').nth(2)?)))
            .cloned()
    };
    let measure = StageMeasure {
        latency_ms: lat,
        stutter_ratio: f("/playback/stutter_ratio").and_then(|v| v.as_f64()).unwrap_or(0.0),
        failed_ratio: f("/turns/failed_ratio").and_then(|v| v.as_f64()).unwrap_or(0.0),
        turns_completed: f("/turns/completed").and_then(|v| v.as_u64()).unwrap_or(0),
    };
    serde_json::to_value(check(&rules, &measure)).ok()
}

#[cfg(test)]
#[path = "merge_tests.rs"]
mod tests;
