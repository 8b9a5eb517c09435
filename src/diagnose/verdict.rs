//! The diagnosis from a matrix's cells: whether the baseline already
//! stutters and why, which changed factor brings stutter and by how much,
//! which cause the gaps had, and what to try. Pure: figures in, words out.

use super::{Cause, CellResult, Factor};
use serde::Serialize;

/// Share of turns with stutter from which a cell counts as stuttering.
pub const STUTTER_SHARE: f64 = 0.10;
/// Turns with stutter a cell needs besides the share (one turn is an anecdote).
pub const STUTTER_TURNS: u64 = 2;

/// One changed factor against the baseline.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Finding {
    pub label: String,
    pub family: &'static str,
    /// This factor brings stutter the baseline did not have.
    pub brings_stutter: bool,
    /// Share of turns with stutter in the cell and in the baseline.
    pub share: f64,
    pub baseline_share: f64,
    /// Stutter per turn (gaps plus dropped audio), ms.
    pub ms_per_turn: f64,
    pub cause: Option<Cause>,
}

/// The whole diagnosis.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Diagnosis {
    /// One line in the operator's terms.
    pub headline: String,
    /// The baseline already stutters.
    pub baseline_stutters: bool,
    pub baseline_cause: Option<Cause>,
    /// Every conclusive cell besides the baseline.
    pub findings: Vec<Finding>,
    /// Cells left out, with why.
    pub inconclusive: Vec<(String, String)>,
    /// What to try, most likely first.
    pub advice: Vec<String>,
    /// Stutter was found (baseline or a factor): exit 1.
    pub stutter_found: bool,
    /// The baseline could not be measured: no verdict at all.
    pub no_verdict: bool,
}

/// Whether a cell stutters at all: enough turns, and enough of them.
pub fn stutters(c: &CellResult) -> bool {
    c.stutter_turns >= STUTTER_TURNS && c.stutter_share() >= STUTTER_SHARE
}

/// The diagnosis of `cells` (the baseline first).
pub fn diagnose(cells: &[CellResult]) -> Diagnosis {
    let inconclusive: Vec<(String, String)> = cells
        .iter()
        .filter_map(|c| c.inconclusive.as_ref().map(|r| (c.spec.factor.label(), r.clone())))
        .collect();
    let Some(base) = cells.first().filter(|b| b.inconclusive.is_none()) else {
        let why = inconclusive
            .first()
            .map(|i| i.1.clone())
            .unwrap_or_else(|| "no cell ran".into());
        return Diagnosis {
            headline: format!("no verdict: the baseline could not be measured ({why})"),
            baseline_stutters: false,
            baseline_cause: None,
            findings: Vec::new(),
            inconclusive,
            advice: Vec::new(),
            stutter_found: false,
            no_verdict: true,
        };
    };
    let baseline_stutters = stutters(base);
    let findings: Vec<Finding> = cells[1..]
        .iter()
        .filter(|c| c.inconclusive.is_none())
        .map(|c| Finding {
            label: c.spec.factor.label(),
            family: c.spec.factor.family(),
            brings_stutter: stutters(c) && c.stutter_share() - base.stutter_share() >= STUTTER_SHARE,
            share: c.stutter_share(),
            baseline_share: base.stutter_share(),
            ms_per_turn: c.ms_per_turn(),
            cause: c.main_cause(),
        })
        .collect();
    let mut d = Diagnosis {
        headline: String::new(),
        baseline_stutters,
        baseline_cause: base.main_cause().filter(|_| baseline_stutters),
        stutter_found: baseline_stutters || findings.iter().any(|f| f.brings_stutter),
        findings,
        inconclusive,
        advice: Vec::new(),
        no_verdict: false,
    };
    d.headline = headline(base, &d);
    d.advice = advice(cells, &d);
    d
}

fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

/// The one line: the baseline's state, then the factors that bring stutter.
fn headline(base: &CellResult, d: &Diagnosis) -> String {
    let bringing: Vec<String> = d
        .findings
        .iter()
        .filter(|f| f.brings_stutter)
        .map(|f| {
            let cause = f.cause.map(|c| format!(", mostly {}", c.name())).unwrap_or_default();
            format!(
                "{} ({} of turns vs {} at baseline, {:.0} ms per turn{cause})",
                f.label,
                pct(f.share),
                pct(f.baseline_share),
                f.ms_per_turn
            )
        })
        .collect();
    let base_text = format!(
        "{} devices, network {}, {}",
        base.spec.devices,
        base.spec.network,
        base.spec.transport.as_str()
    );
    match (d.baseline_stutters, bringing.is_empty()) {
        (false, true) => {
            format!("no stutter: the baseline ({base_text}) and every changed factor played without gaps worth hearing")
        }
        (false, false) => format!("stutter comes with {}", bringing.join("; ")),
        (true, _) => {
            let cause = match d.baseline_cause {
                Some(Cause::Server) => {
                    "frames were already late when they reached the device: the server side (synthesis or sending), not the link"
                }
                Some(Cause::Network) => "the baseline's own network conditions held the frames",
                Some(Cause::Device) => "the device's decode queue dropped audio the server sent too far ahead",
                None => "no cause recorded",
            };
            let mut s = format!(
                "the baseline already stutters ({base_text}): {} of turns, {:.0} ms per turn; {cause}",
                pct(base.stutter_share()),
                base.ms_per_turn()
            );
            if !bringing.is_empty() {
                s.push_str(&format!("; worse with {}", bringing.join("; ")));
            }
            s
        }
    }
}

/// What to try, from the causes found where.
fn advice(cells: &[CellResult], d: &Diagnosis) -> Vec<String> {
    let mut out = Vec::new();
    let base = &cells[0];
    if d.baseline_cause == Some(Cause::Server) {
        let cpu = base
            .server_cpu_cores
            .map(|c| format!(" (server CPU peaked at {c:.2} cores)"))
            .unwrap_or_default();
        out.push(format!(
            "The server is late with only {} speakers{cpu}: a TTS provider slower than real time, or a \
             non-streaming one, is the usual reason. Try a faster or streaming TTS; `xiaozhi-fleet run` \
             against the built-in mock shows the server's own overhead without the providers.",
            base.spec.devices
        ));
    }
    let causes_of = |family: &str| -> Vec<Cause> {
        d.findings
            .iter()
            .filter(|f| f.brings_stutter && f.family == family)
            .filter_map(|f| f.cause)
            .collect()
    };
    if causes_of("devices").contains(&Cause::Server) {
        out.push(
            "Frames leave the server late as speakers are added: it is short of CPU (or of ASR/TTS \
             workers). Put fewer devices on each core, or size it with `xiaozhi-fleet capacity`."
                .into(),
        );
    }
    let network = cells
        .iter()
        .filter(|c| matches!(c.spec.factor, Factor::Network(_)))
        .any(|c| stutters(c) && c.main_cause() == Some(Cause::Network));
    if network || d.baseline_cause == Some(Cause::Network) {
        out.push(
            "The link makes frames late: the server sends only ~5 frames (300 ms) ahead (PROTOCOL.md §7.2), \
             so any jitter or a TCP retransmission (≥ 200 ms) empties the device's queue. Set the server's \
             `tts_audio_send_delay` a little under the 60 ms frame (e.g. 50) so it sends further ahead, and \
             check Wi-Fi coverage or the 4G signal."
                .into(),
        );
    }
    if d.findings.iter().any(|f| f.family == "transport" && f.brings_stutter) {
        out.push(
            "One transport stutters more than the other on this server: compare the gateway's hop \
             (MQTT + UDP) with the direct WebSocket before changing the server."
                .into(),
        );
    }
    let device = cells
        .iter()
        .any(|c| stutters(c) && c.main_cause() == Some(Cause::Device));
    if device || d.baseline_cause == Some(Cause::Device) {
        out.push(
            "Devices drop audio: the server sends further ahead than their decode queue holds. Keep \
             `tts_audio_send_delay` at 0 (PY's 5-frame lead) for memory-tight boards."
                .into(),
        );
    }
    if !d.stutter_found {
        out.push(
            "Nothing tried here brings stutter. Reproduce the reporter's own conditions: their device \
             count, network profile (`network = ...` in a fleet file) and TTS provider."
                .into(),
        );
    }
    out
}

/// The diagnosis for the console: the matrix as a table, then the verdict.
pub fn render(cells: &[super::CellResult], d: &Diagnosis) -> String {
    use std::fmt::Write;
    let mut s = String::from(
        "\nDiagnosis matrix (one factor changed per row; stutter = turns with gaps in playback or dropped audio; ms/turn = their total per turn)\n",
    );
    let _ = writeln!(
        s,
        "  {:<26} {:>5} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10}",
        "cell", "turns", "stutter", "ms/turn", "server", "network", "device", "1st audio"
    );
    for c in cells {
        let fa = c
            .first_audio_p95_ms
            .map(|v| format!("{v:.0} ms"))
            .unwrap_or_else(|| "–".into());
        let _ = write!(
            s,
            "  {:<26} {:>5} {:>8.0}% {:>9.0} {:>9.0} {:>9.0} {:>9.0} {:>10}",
            c.spec.factor.label(),
            c.turns,
            c.stutter_share() * 100.0,
            c.ms_per_turn(),
            c.per_turn(c.server_ms),
            c.per_turn(c.network_ms),
            c.per_turn(c.device_ms),
            fa
        );
        if let Some(why) = &c.inconclusive {
            let _ = write!(s, "  left out: {why}");
        }
        s.push('\n');
    }
    let _ = writeln!(s, "\nVerdict: {}", d.headline);
    for a in &d.advice {
        let _ = writeln!(s, "  - {a}");
    }
    s
}
