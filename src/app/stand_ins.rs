//! The AI provider stand-ins as the commands use them: `providers` serves
//! them until Ctrl-C; `run` and `capacity` start them through the rig
//! ([`crate::rig`]) and put their figures in the report; `capacity
//! --llm-delay` searches once per LLM first-token delay.

use crate::capacity::run::CapacityOutcome;
use crate::capacity::section::CapacitySection;
use crate::dist::Dist;
use crate::providers::{ProvidersConfig, ProvidersReport, ProvidersServer};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

/// The `validate` line for the stand-ins' settings (none when the fleet
/// file has no `[providers]` table).
pub fn describe(c: &ProvidersConfig) -> String {
    if *c == ProvidersConfig::default() {
        return String::new();
    }
    let w = |n: Option<usize>| n.map_or("no limit".to_string(), |n| format!("{n} workers"));
    let at = c
        .listen
        .as_deref()
        .map_or("started by --providers ADDR".to_string(), |a| format!("on {a}"));
    format!(
        "AI provider stand-ins ({at}): LLM first token {}, then {} per token, {} repl{} by {}, {:.0}% tool calls, {}; \
         TTS {} + {} per character at {} Hz{}, {}; ASR {}, fallback \"{}\", {}\n",
        c.llm.first_token,
        c.llm.token_interval,
        c.llm.replies.len(),
        if c.llm.replies.len() == 1 { "y" } else { "ies" },
        match c.llm.pick {
            crate::providers::config::ReplyPick::Seed => "seed",
            crate::providers::config::ReplyPick::Turn => "turn",
        },
        c.llm.tool_call_ratio * 100.0,
        w(c.llm.workers),
        c.tts.delay,
        crate::units::format_duration(c.tts.per_char),
        c.tts.sample_rate,
        rtf_words(c.tts.rtf),
        w(c.tts.workers),
        c.asr.delay,
        c.asr.fallback,
        w(c.asr.workers),
    )
}

/// The TTS real-time factor in words, when it slows synthesis (< 1).
pub(crate) fn rtf_words(rtf: f64) -> String {
    match crate::mock::synthesis::synthesis_time(crate::audio::FRAME, rtf) {
        Some(t) => format!(
            ", streamed at real-time factor {rtf} (each 60 ms of audio made in {})",
            crate::units::format_duration(t)
        ),
        None => String::new(),
    }
}

/// Serves the stand-ins on `listen` until `shutdown`.
pub async fn serve(listen: &str, cfg: ProvidersConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let server = ProvidersServer::start(listen, cfg)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    crate::rig::announce_stand_ins(&server);
    shutdown.cancelled().await;
    let r = server.report();
    eprintln!(
        "stand-ins served {} LLM, {} TTS and {} ASR requests",
        r.llm.requests, r.tts.requests, r.asr.requests
    );
    server.stop().await;
    Ok(())
}

/// One search of an LLM-delay sweep, as the capacity report lists it.
#[derive(Clone, Debug, Serialize)]
pub struct SweepPoint<T> {
    /// The stand-in LLM's first-token delay during this search.
    pub llm_first_token: String,
    #[serde(flatten)]
    pub outcome: T,
    /// The stand-ins' figures during this search.
    pub providers: ProvidersReport,
}

/// The searches of a sweep: one per delay in `delays` when the stand-ins
/// run, or one search as they are.
pub fn sweep_delays(server: Option<&ProvidersServer>, delays: &[Dist]) -> Vec<Option<Dist>> {
    match (server, delays.is_empty()) {
        (Some(_), false) => delays.iter().copied().map(Some).collect(),
        _ => vec![None],
    }
}

/// Before search `i` of `n`: sets the stand-in LLM's first-token delay and
/// clears the stand-ins' figures (nothing for a search without a delay).
pub fn before_search(server: Option<&ProvidersServer>, i: usize, n: usize, delay: Option<Dist>) {
    if let (Some(s), Some(d)) = (server, delay) {
        s.set_llm_first_token(d);
        s.reset();
        eprintln!("\nLLM first-token delay {d} ({} of {n}):", i + 1);
    }
}

/// Splits a sweep's results: the first search's outcome and stand-in
/// figures (the report's main sections), and every search as a sweep point
/// (empty without `--llm-delay`). The first failed search's error wins.
#[allow(clippy::type_complexity)]
pub fn first_and_sweep(
    runs: Vec<(Option<Dist>, anyhow::Result<CapacityOutcome>, Option<ProvidersReport>)>,
) -> anyhow::Result<(
    CapacityOutcome,
    Option<ProvidersReport>,
    Vec<SweepPoint<CapacitySection>>,
)> {
    let mut points = Vec::new();
    let mut first = None;
    for (delay, out, providers) in runs {
        let out = out?;
        if let (Some(d), Some(p)) = (delay, &providers) {
            points.push(SweepPoint {
                llm_first_token: d.to_string(),
                outcome: out.capacity.clone(),
                providers: p.clone(),
            });
        }
        if first.is_none() {
            first = Some((out, providers));
        }
    }
    let (out, providers) = first.ok_or_else(|| anyhow::anyhow!("the capacity search did not run"))?;
    Ok((out, providers, points))
}

/// The sweep's console table: the knee at each LLM delay.
pub fn sweep_lines(points: &[SweepPoint<CapacitySection>]) -> String {
    if points.is_empty() {
        return String::new();
    }
    let mut out =
        String::from("\nknee by stand-in LLM first-token delay (what the provider, not the container, costs):\n");
    for p in points {
        let fa = p
            .outcome
            .stages
            .iter()
            .filter(|s| Some(s.speakers) == p.outcome.max_speakers)
            .find_map(|s| s.latency_ms.get("first_audio"))
            .map_or(String::new(), |l| format!(", p95 first audio there {:.0} ms", l.p95));
        out += &format!(
            "  LLM first token {:>8}: {} within the SLOs{fa} (stopped: {})\n",
            p.llm_first_token,
            p.outcome
                .max_speakers
                .map_or(crate::capacity::search::knee_text(None), |k| format!("{k} speakers")),
            p.outcome.stop_reason
        );
    }
    out
}
