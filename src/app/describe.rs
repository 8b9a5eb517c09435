//! `validate`: the resolved plan in plain words.

use crate::config::{Plan, Target};
use crate::fleet::load_clips;
use crate::mock::{BurnThreads, DownlinkMode};
use crate::protocol::ListenMode;

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
    let grace = fd(plan.timeouts.grace);
    let stop = match (&plan.load, plan.stop) {
        (Load::Stages(st), _) => format!(
            "after the last stage ({} stage(s), {} of measuring, each after its ramp-up; then up to {grace} grace)",
            st.len(),
            fd(st.iter().map(|x| x.duration).sum())
        ),
        (_, Stop::Duration(d)) => format!("after {} (then up to {grace} grace)", fd(d)),
        (Load::Arrivals { .. }, Stop::Turns(_)) => match plan.total_turns {
            Some(n) => format!("after {n} turns in total"),
            None => "never (set `duration` or `total_turns`)".to_string(),
        },
        (Load::PerDevice, Stop::Turns(_)) => "when every device has held its conversations".to_string(),
    };
    let _ = writeln!(s, "load: {load}\nstop: {stop}");
    if let Some(n) = plan.total_turns
        && !stop.contains("turns in total")
    {
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
        let turns = match g.turns {
            _ if g.talks() && matches!(plan.load, Load::Stages(_)) => "turns back to back while a speaker".to_string(),
            None => "turns until the run ends".to_string(),
            Some(0) => "no turns (only idles)".to_string(),
            Some(t) => format!("turns per conversation {t}"),
        };
        let start = match &g.start {
            StartBy::Button => "button".to_string(),
            StartBy::WakeWord(w) => format!("wake word {w}"),
        };
        let _ = writeln!(
            s,
            "group {}: {} devices, mode {}, start by {start}, {turns}, think {}, barge-in {:.0}%, idle {}",
            g.name,
            g.count,
            mode_name(g.mode),
            g.think_time,
            g.barge_in * 100.0,
            g.idle.as_str()
        );
        if plan.load == Load::PerDevice && g.turns.is_some() && g.conversations > 1 {
            let _ = writeln!(
                s,
                "    {} conversations per device, idle {} between them",
                g.conversations, g.idle_time
            );
        }
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
            "mock: asr {}, llm {}, tts {}, {} sentences (+{} each), silence window {}, downlink {}",
            fd(m.asr_delay),
            fd(m.llm_delay),
            fd(m.tts_delay),
            m.sentences,
            m.sentence_delay,
            fd(m.silence_window),
            downlink_name(&m.downlink)
        );
        if !m.cpu_burn.is_zero() {
            let threads = match m.cpu_burn_threads {
                BurnThreads::Pool => "pool",
                BurnThreads::Single => "single",
            };
            let _ = writeln!(s, "      cpu_burn {} per answer stage ({threads})", fd(m.cpu_burn));
        }
    }
    s.push_str(&super::stand_ins::describe(&plan.providers));
    Ok(s)
}

/// A listen mode as fleet files spell it.
fn mode_name(mode: ListenMode) -> &'static str {
    match mode {
        ListenMode::Auto => "auto",
        ListenMode::Manual => "manual",
        ListenMode::Realtime => "realtime",
    }
}

/// A downlink mode as fleet files spell it, with its settings.
fn downlink_name(mode: &DownlinkMode) -> String {
    use crate::units::format_duration as fd;
    match mode {
        DownlinkMode::Realtime => "realtime".to_string(),
        DownlinkMode::Burst => "burst".to_string(),
        DownlinkMode::Jitter { max } => format!("jitter (jitter_max {})", fd(*max)),
        DownlinkMode::Stall { after, pause } => format!("stall (stall_after {after}, stall {})", fd(*pause)),
    }
}
