//! Console lines for the AI provider stand-ins (`--providers`): what the
//! server asked of its LLM, TTS and ASR, how long each answer took, and how
//! many requests queued for a worker, printed under the turn latencies.

use crate::providers::{ProviderReport, ProvidersReport};
use std::fmt::Write;

/// Appends the stand-ins' block to the summary.
pub fn providers_lines(out: &mut String, p: &ProvidersReport) {
    let s = &p.settings;
    let _ = writeln!(
        out,
        "\nAI provider stand-ins at {} (LLM first token {}, TTS {}, ASR {}):",
        p.url, s.llm_first_token, s.tts_delay, s.asr_delay
    );
    if p.requests() == 0 {
        let _ = writeln!(
            out,
            "  no requests reached them: point the server's LLM, TTS and ASR at {} (docs/real-server.md)",
            p.url
        );
        return;
    }
    line(out, "LLM", &p.llm, "text", "tool_call");
    line(out, "TTS", &p.tts, "wav", "pcm");
    line(out, "ASR", &p.asr, "matched", "fallback");
    if let Some(ft) = &p.llm.first_token_ms {
        let _ = writeln!(
            out,
            "  LLM first token (ms): p50 {:.0}, p95 {:.0}, max {:.0}",
            ft.p50, ft.p95, ft.max
        );
    }
}

fn line(out: &mut String, name: &str, r: &ProviderReport, a: &str, b: &str) {
    if r.requests == 0 {
        let _ = writeln!(out, "  {name}: no requests");
        return;
    }
    let n = |k: &str| r.outcomes.get(k).copied().unwrap_or(0);
    let limit = r.workers.map_or("no limit".to_string(), |w| format!("limit {w}"));
    let _ = writeln!(
        out,
        "  {name}: {} requests ({} {a}, {} {b}, {} failed), answer p50 {:.0} ms, p95 {:.0} ms; {} queued for a worker ({limit}, wait p95 {:.0} ms)",
        r.requests,
        n(a),
        n(b),
        r.failed,
        r.latency_ms.p50,
        r.latency_ms.p95,
        r.waited,
        r.wait_ms.p95
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn idle_stand_ins_say_where_the_server_should_point() {
        let mut out = String::new();
        let p = ProvidersReport {
            url: "http://127.0.0.1:18080".into(),
            ..Default::default()
        };
        providers_lines(&mut out, &p);
        assert!(out.contains("no requests reached them"), "{out}");
    }

    #[test]
    fn busy_stand_ins_show_counts_latency_and_queueing() {
        let mut out = String::new();
        let mut p = ProvidersReport::default();
        p.llm.requests = 3;
        p.llm.waited = 1;
        p.llm.workers = Some(2);
        p.llm.latency_ms.p95 = 2000.0;
        p.llm.outcomes = BTreeMap::from([("text".to_string(), 3)]);
        providers_lines(&mut out, &p);
        assert!(out.contains("LLM: 3 requests (3 text, 0 tool_call, 0 failed)"), "{out}");
        assert!(out.contains("p95 2000 ms; 1 queued for a worker (limit 2"), "{out}");
        assert!(out.contains("TTS: no requests"), "{out}");
    }
}
