//! `validate`: the resolved plan in plain words.

use crate::config::{Load, Plan, Shape, Target};
use crate::fleet::load_clips;
use crate::mock::{BurnThreads, DownlinkMode};
use crate::protocol::ListenMode;
use crate::units::format_duration as fd;

/// A group's network and board in one indented line.
fn conditions_words(g: &crate::config::GroupPlan) -> String {
    let network = match &g.network {
        None => "lan (perfect: nothing injected)".to_string(),
        Some(n) => n.summary(),
    };
    let b = &g.playback;
    format!(
        "    network {network}; device {} (queue {} frames, overflow {}, start threshold {})",
        g.device_profile,
        b.queue_capacity,
        b.overflow.as_str(),
        b.start_threshold
    )
}

/// The resolved plan in plain words (for `validate`).
pub fn describe_plan(plan: &Plan) -> anyhow::Result<String> {
    use crate::config::{StartBy, Stop};
    use std::fmt::Write as _;
    let clips = load_clips(plan)?;
    let mut s = String::new();
    let target = match &plan.target {
        Target::Url(u) => u.clone(),
        Target::BuiltInMock => "built-in mock server (no url)".to_string(),
        Target::OtaAnswer => "the WebSocket URL of each device's OTA answer".to_string(),
    };
    let _ = writeln!(s, "fleet: {}\ntarget: {target}", plan.name);
    if let Some(ota) = &plan.ota {
        let _ = writeln!(s, "ota: {ota} (version check before each device's first connection)");
    }
    let _ = writeln!(
        s,
        "devices: {} (connected at {} per second)",
        plan.devices, plan.ramp_per_sec
    );
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
    s.push_str(&load_words(&plan.load, plan.shape));
    let _ = writeln!(s, "stop: {stop}");
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
        let _ = writeln!(s, "{}", conditions_words(g));
        if let Some(pause) = g.pause {
            let _ = writeln!(s, "    {}", pause_words(pause, plan));
        }
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
        let rtf = super::stand_ins::rtf_words(m.tts_rtf);
        if !rtf.is_empty() {
            let _ = writeln!(s, "      TTS{rtf}: slower than playback");
        }
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

/// A group's pause mid-sentence, and whether the mock's VAD splits on it.
fn pause_words(pause: std::time::Duration, plan: &Plan) -> String {
    let mut line = format!(
        "pause {} in the middle of every clip (before its quietest middle packet): a server whose VAD silence window is shorter ends the turn there and answers twice",
        fd(pause)
    );
    if plan.target == Target::BuiltInMock {
        let window = plan.mock.silence_window;
        let verdict = if pause > window { "splits" } else { "does not split" };
        line.push_str(&format!("; the mock's window is {}: it {verdict}", fd(window)));
    }
    line
}

/// The `load:` and `shape:` lines: what drives conversations and how the
/// speakers of a step plan time their turns, with their parameters.
fn load_words(load: &Load, shape: Shape) -> String {
    let load_line = match load {
        Load::PerDevice => "each device on its own, holding its group's conversations (below)".to_string(),
        Load::Stages(st) => {
            let steps: Vec<String> = st
                .iter()
                .map(|x| format!("{} for {}", x.speakers, fd(x.duration)))
                .collect();
            format!("a step plan of concurrent speakers: {}", steps.join(", "))
        }
        Load::Arrivals { per_sec } => format!(
            "open model: conversations arrive as a Poisson process at {per_sec} per second (one every {} on average), whatever the server's speed",
            fd(crate::units::secs_capped(1.0 / per_sec))
        ),
    };
    let shape_line = match (load, shape) {
        (Load::Stages(_), Shape::Steady) => {
            "steady (closed loop): each speaker talks again after its think time, phases spread by the ramp and the think times"
                .to_string()
        }
        (Load::Stages(_), Shape::Burst) => {
            "burst (closed loop in rounds): every speaker starts a turn at the same moment; the next round starts one think time after the last has ended"
                .to_string()
        }
        (Load::Stages(_), Shape::Poisson) => {
            "poisson (open model per stage): a warm-up of back-to-back turns measures how long a turn takes (W), then one-turn conversations arrive at speakers / W per second, so that many are busy on average"
                .to_string()
        }
        (_, Shape::Steady) => return format!("load: {load_line}\n"),
        (_, other) => format!("{} (given, but only a step plan uses it: ignored)", other.as_str()),
    };
    format!("load: {load_line}\nshape: {shape_line}\n")
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
    match mode {
        DownlinkMode::Realtime => "realtime".to_string(),
        DownlinkMode::Burst => "burst".to_string(),
        DownlinkMode::Jitter { max } => format!("jitter (jitter_max {})", fd(*max)),
        DownlinkMode::Stall { after, pause } => format!("stall (stall_after {after}, stall {})", fd(*pause)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StagePlan;
    use std::time::Duration;

    fn steps(speakers: &[u32]) -> Load {
        Load::Stages(
            speakers
                .iter()
                .map(|&n| StagePlan {
                    name: format!("{n} speakers"),
                    speakers: n,
                    duration: Duration::from_secs(60),
                    min_turns: 0,
                })
                .collect(),
        )
    }

    #[test]
    fn step_plan_names_its_steps_and_how_speakers_time_their_turns() {
        let steady = load_words(&steps(&[10, 20]), Shape::Steady);
        assert_eq!(
            steady.lines().next(),
            Some("load: a step plan of concurrent speakers: 10 for 60s, 20 for 60s")
        );
        assert!(steady.contains("shape: steady (closed loop): each speaker talks again after its think time"));
        let burst = load_words(&steps(&[10]), Shape::Burst);
        assert!(burst.contains("shape: burst (closed loop in rounds): every speaker starts a turn at the same moment"));
        let poisson = load_words(&steps(&[10]), Shape::Poisson);
        assert!(poisson.contains("shape: poisson (open model per stage)"));
        assert!(poisson.contains("arrive at speakers / W per second"));
    }

    #[test]
    fn open_model_gives_its_rate_and_mean_gap() {
        let open = load_words(&Load::Arrivals { per_sec: 0.5 }, Shape::Steady);
        assert_eq!(
            open,
            "load: open model: conversations arrive as a Poisson process at 0.5 per second (one every 2s on average), whatever the server's speed\n"
        );
    }

    #[test]
    fn shape_outside_a_step_plan_is_said_to_be_ignored() {
        let words = load_words(&Load::PerDevice, Shape::Burst);
        assert_eq!(
            words,
            "load: each device on its own, holding its group's conversations (below)\nshape: burst (given, but only a step plan uses it: ignored)\n"
        );
    }

    #[test]
    fn each_group_shows_its_network_and_board() {
        let text = "devices = 2\nnetwork = \"4g\"\n[[group]]\ncount = 1\n[[group]]\ncount = 1\nnetwork = \"lan\"\n[group.device]\nqueue = 5\n";
        let raw = crate::config::FleetFile::parse(text, "t.toml").unwrap();
        let plan = Plan::from_file(raw, "t.toml", &Default::default()).unwrap();
        let four_g = conditions_words(&plan.groups[0]);
        assert!(
            four_g.starts_with("    network 4g: latency 20ms + exp(15ms) one-way, loss 0.5%"),
            "{four_g}"
        );
        assert!(four_g.ends_with("device esp32-s3-default (queue 40 frames, overflow drop, start threshold 0)"));
        assert_eq!(
            conditions_words(&plan.groups[1]),
            "    network lan (perfect: nothing injected); device esp32-s3-default (queue 5 frames, overflow drop, start threshold 0)"
        );
    }
}
