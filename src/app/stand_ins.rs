//! The AI provider stand-ins as the commands use them: `providers` serves
//! them until Ctrl-C; `run` and `capacity` start them in-process when the
//! plan says where (`--providers ADDR` or `[providers] listen`), put their
//! figures in the report, and `capacity --llm-delay` searches once per LLM
//! first-token delay.

use crate::capacity::run::{CapacityOutcome, CapacitySection};
use crate::config::{Plan, Target};
use crate::dist::Dist;
use crate::providers::{ProvidersConfig, ProvidersReport, ProvidersServer};
use serde::Serialize;
use std::future::Future;
use tokio_util::sync::CancellationToken;

/// Prints where each stand-in is, in the words of the server's config.yaml.
fn announce(server: &ProvidersServer) {
    let url = server.url();
    let ws = url.replacen("http://", "ws://", 1);
    eprintln!("AI provider stand-ins listening on {url}");
    eprintln!("  LLM  (type: openai)      url: {url}/v1");
    eprintln!("  TTS  (type: openai)      api_url: {url}/v1/audio/speech");
    eprintln!("  ASR  (type: fun_server)  {ws}/  (host, port, is_ssl: false)");
    eprintln!("  ASR  (type: openai)      base_url: {url}/v1/audio/transcriptions");
    eprintln!("  figures: GET {url}/stats");
    if server.addr.ip().is_loopback() {
        eprintln!("  (loopback only: a server in a container needs --listen 0.0.0.0:PORT)");
    }
}

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
         TTS {} + {} per character at {} Hz, {}; ASR {}, fallback \"{}\", {}\n",
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
        w(c.tts.workers),
        c.asr.delay,
        c.asr.fallback,
        w(c.asr.workers),
    )
}

/// Serves the stand-ins on `listen` until `shutdown`.
pub async fn serve(listen: &str, cfg: ProvidersConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let server = ProvidersServer::start(listen, cfg)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    announce(&server);
    shutdown.cancelled().await;
    let r = server.report();
    eprintln!(
        "stand-ins served {} LLM, {} TTS and {} ASR requests",
        r.llm.requests, r.tts.requests, r.asr.requests
    );
    server.stop().await;
    Ok(())
}

/// Starts the stand-ins in-process when the plan names an address.
pub async fn start(plan: &Plan) -> anyhow::Result<Option<ProvidersServer>> {
    let Some(listen) = &plan.providers.listen else {
        if !plan.providers.llm_delay_sweep.is_empty() {
            anyhow::bail!(
                "--llm-delay sweeps the stand-ins' LLM delay: also give --providers ADDR, the address your server's LLM points at"
            );
        }
        return Ok(None);
    };
    if plan.target == Target::BuiltInMock {
        if !plan.providers.llm_delay_sweep.is_empty() {
            anyhow::bail!(
                "--llm-delay needs a real server (--url) whose LLM calls the stand-ins; the built-in mock has its own delays ([mock] llm_delay)"
            );
        }
        eprintln!(
            "note: the built-in mock does not call AI providers; the stand-ins only see requests from a real server"
        );
    }
    let server = ProvidersServer::start(listen, plan.providers.clone())
        .await
        .map_err(|e| anyhow::anyhow!("cannot start the AI provider stand-ins on {listen}: {e}"))?;
    announce(&server);
    Ok(Some(server))
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

/// Runs `search` once per delay in `delays` (setting the stand-in LLM's
/// first-token delay and clearing its figures before each), or once as it
/// is when `delays` is empty. Stops early when `search` says to (Ctrl-C).
/// Returns each search's result with the stand-ins' figures for it.
pub async fn sweep<T, F, Fut>(
    server: Option<&ProvidersServer>,
    delays: &[Dist],
    mut search: F,
) -> Vec<(Option<Dist>, T, Option<ProvidersReport>)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = (T, bool)>,
{
    let plan: Vec<Option<Dist>> = match (server, delays.is_empty()) {
        (Some(_), false) => delays.iter().copied().map(Some).collect(),
        _ => vec![None],
    };
    let mut out = Vec::with_capacity(plan.len());
    for (i, delay) in plan.iter().enumerate() {
        if let (Some(s), Some(d)) = (server, delay) {
            s.set_llm_first_token(*d);
            s.reset();
            eprintln!("\nLLM first-token delay {d} ({} of {}):", i + 1, plan.len());
        }
        let (result, stop) = search().await;
        out.push((*delay, result, server.map(ProvidersServer::report)));
        if stop {
            break;
        }
    }
    out
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
