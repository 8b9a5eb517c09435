//! `validate`: the resolved plan in plain words.

use crate::config::{Plan, Target};
use crate::fleet::load_clips;

/// The resolved plan in plain words (for `validate`).
pub fn describe_plan(plan: &Plan) -> anyhow::Result<String> {
    use crate::config::{Load, StartBy, Stop};
    use crate::units::format_duration as fd;
    use std::fmt::Write as _;
    let clips = load_clips(plan)?;
    let mut s = String::new();
    let target = match &plan.target {
        Target::Url(u) => u.clone(),
        Target::BuiltInMock => "built-in mock server (no url)".to_string(),
    };
    let _ = writeln!(s, "fleet: {}\ntarget: {target}", plan.name);
    let _ = writeln!(
        s,
        "devices: {} (connected at {} per second)",
        plan.devices, plan.ramp_per_sec
    );
    let load = match &plan.load {
        Load::PerDevice => "each device holds its own conversations".to_string(),
        Load::Stages(st) => {
            let steps: Vec<String> = st
                .iter()
                .map(|x| format!("{} for {}", x.speakers, fd(x.duration)))
                .collect();
            format!("step plan of concurrent speakers (closed loop): {}", steps.join(", "))
        }
        Load::Arrivals { per_sec } => format!("open model: conversations arrive at {per_sec} per second (Poisson)"),
    };
    let stop = match plan.stop {
        Stop::Turns(_) => "when every conversation is done".to_string(),
        Stop::Duration(d) => format!("after {} (then up to {} grace)", fd(d), fd(plan.timeouts.grace)),
    };
    let _ = writeln!(s, "load: {load}\nstop: {stop}");
    if let Some(n) = plan.total_turns {
        let _ = writeln!(s, "  or after {n} turns in total");
    }
    let _ = writeln!(
        s,
        "seed: {}\nprotocol version: {}",
        plan.seed,
        plan.protocol_version.as_u8()
    );
    let t = &plan.timeouts;
    let _ = writeln!(
        s,
        "timeouts: hello {}, no reply {}, reply {}",
        fd(t.hello),
        fd(t.no_reply),
        fd(t.reply)
    );
    let _ = writeln!(
        s,
        "device profile: {} (queue {} frames, start threshold {})",
        plan.profile, plan.playback.queue_capacity, plan.playback.start_threshold
    );
    let mut uplink_bytes = 0.0;
    for g in &plan.groups {
        let selected = clips.select(&g.clips)?;
        let turns = g.turns.map_or("until the run ends".to_string(), |t| t.to_string());
        let start = match &g.start {
            StartBy::Button => "button".to_string(),
            StartBy::WakeWord(w) => format!("wake word {w}"),
        };
        let _ = writeln!(
            s,
            "group {}: {} devices, mode {:?}, start by {start}, turns per conversation {turns}, think {}, barge-in {:.0}%, idle {:?}",
            g.name,
            g.count,
            g.mode,
            g.think_time,
            g.barge_in * 100.0,
            g.idle
        );
        for c in &selected {
            let _ = writeln!(
                s,
                "    {:<20} {:>5.2} s  {}",
                c.name,
                c.duration().as_secs_f64(),
                c.transcript
            );
        }
        let avg: f64 = selected
            .iter()
            .map(|c| c.packets.iter().map(|p| p.len()).sum::<usize>() as f64 / c.packets.len() as f64)
            .sum::<f64>()
            / selected.len().max(1) as f64;
        uplink_bytes += avg * g.count as f64;
    }
    let per_sec = 1000.0 / crate::audio::FRAME.as_millis() as f64;
    let _ = writeln!(
        s,
        "uplink if every device streamed at once: {:.0} frames/s, about {:.0} kbit/s (each speaker: {per_sec:.1} frames/s)",
        plan.devices as f64 * per_sec,
        uplink_bytes * per_sec * 8.0 / 1000.0
    );
    if plan.target == Target::BuiltInMock {
        let m = &plan.mock;
        let _ = writeln!(
            s,
            "mock: asr {}, llm {}, tts {}, {} sentences (+{} each), silence window {}, downlink {:?}",
            fd(m.asr_delay),
            fd(m.llm_delay),
            fd(m.tts_delay),
            m.sentences,
            m.sentence_delay,
            fd(m.silence_window),
            m.downlink
        );
    }
    s.push_str(&super::stand_ins::describe(&plan.providers));
    Ok(s)
}
