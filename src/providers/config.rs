//! The stand-ins' settings: the `[providers]` table of a fleet file (or
//! `providers --config FILE`), resolved into [`ProvidersConfig`].
//!
//! Every latency is a seeded [`Dist`] (`300ms`, `uniform(200ms, 3s)`,
//! `exp(1s)`, `lognormal(1s, 0.5)`); every provider has a concurrency limit
//! (`workers`, 0 = unbounded) that queues requests past it, the way a
//! provider's rate limit or a local model's worker pool does.

use crate::dist::Dist;
use crate::units::Span;
use serde::Deserialize;
use std::time::Duration;

/// `[providers]` as written. Unknown keys are errors.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvidersSettings {
    /// Start the stand-ins here during `run`/`capacity` (`--providers` wins).
    pub listen: Option<String>,
    /// Seed for every draw (latencies, reply choice, tool calls).
    pub seed: Option<u64>,
    pub llm: Option<LlmSettings>,
    pub tts: Option<TtsSettings>,
    pub asr: Option<AsrSettings>,
}

/// `[providers.llm]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmSettings {
    /// Request → first token.
    pub first_token: Option<Dist>,
    /// Between tokens.
    pub token_interval: Option<Dist>,
    /// One fixed reply...
    pub reply: Option<String>,
    /// ...or several, picked by `pick`.
    pub replies: Option<Vec<String>>,
    /// `seed` (a seeded draw per request) or `turn` (the Nth user message gets reply N).
    pub pick: Option<ReplyPick>,
    /// Share of requests offering `tools` (with `tool_choice` auto) answered
    /// with a tool call; `tool_choice: required` or a named function always is.
    pub tool_call_ratio: Option<f64>,
    /// The tool to call (default: `self.get_device_status` when offered, else the first).
    pub tool: Option<String>,
    /// Its JSON arguments (default `{}`).
    pub tool_arguments: Option<String>,
    pub workers: Option<usize>,
}

/// `[providers.tts]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TtsSettings {
    /// Request → response.
    pub delay: Option<Dist>,
    /// Audio length per character of input (punctuation and spaces excluded).
    pub per_char: Option<Span>,
    /// 16000 or 24000 Hz.
    pub sample_rate: Option<u32>,
    /// Real-time factor: audio made per unit of synthesis time (0.8: 60 ms
    /// of audio every 75 ms), the body streamed as it is made; 1 or more
    /// (the default): the whole audio at once after `delay`.
    pub rtf: Option<f64>,
    pub workers: Option<usize>,
}

/// `[providers.asr]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AsrSettings {
    /// End of audio → transcript.
    pub delay: Option<Dist>,
    /// Transcript when the audio matches no bundled clip.
    pub fallback: Option<String>,
    /// Lowest correlation (0..1) that counts as a match.
    pub min_match: Option<f64>,
    pub workers: Option<usize>,
}

/// Resolved LLM settings.
#[derive(Clone, Debug, PartialEq)]
pub struct LlmConfig {
    pub first_token: Dist,
    pub token_interval: Dist,
    pub replies: Vec<String>,
    pub pick: ReplyPick,
    pub tool_call_ratio: f64,
    pub tool: Option<String>,
    pub tool_arguments: String,
    pub workers: Option<usize>,
}

/// How a reply is chosen from the list; written `seed` or `turn`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplyPick {
    Seed,
    Turn,
}

/// Resolved TTS settings.
#[derive(Clone, Debug, PartialEq)]
pub struct TtsConfig {
    pub delay: Dist,
    pub per_char: Duration,
    pub sample_rate: u32,
    /// Real-time factor (1: the whole audio at once).
    pub rtf: f64,
    pub workers: Option<usize>,
}

/// Resolved ASR settings.
#[derive(Clone, Debug, PartialEq)]
pub struct AsrConfig {
    pub delay: Dist,
    pub fallback: String,
    pub min_match: f64,
    pub workers: Option<usize>,
}

/// Everything the stand-ins need, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct ProvidersConfig {
    pub listen: Option<String>,
    /// `capacity --llm-delay`: search once per LLM first-token delay (not a file key).
    pub llm_delay_sweep: Vec<Dist>,
    pub seed: u64,
    pub llm: LlmConfig,
    pub tts: TtsConfig,
    pub asr: AsrConfig,
}

/// The reply when none is configured: two sentences, so the server's TTS
/// path splits and speaks twice, as with a real answer.
pub const DEFAULT_REPLY: &str = "好的，我明白了。今天天气晴朗，适合出门散步。";
/// The ASR transcript when the audio matches no clip.
pub const DEFAULT_FALLBACK: &str = "你好";

impl Default for ProvidersConfig {
    fn default() -> Self {
        match ProvidersSettings::default().resolve() {
            Ok(c) => c,
            Err((k, m)) => unreachable!("defaults are valid ({k}: {m})"),
        }
    }
}

fn ms(n: u64) -> Dist {
    Dist::Fixed(Duration::from_millis(n))
}

fn workers(w: Option<usize>) -> Option<usize> {
    w.filter(|&n| n > 0)
}

impl ProvidersSettings {
    /// Fills defaults and checks values; errors are `(key, message)` with
    /// the key relative to `[providers]`.
    ///
    /// Default latencies are those the project's own sizing runs used
    /// (SIZING.md: ASR 200 ms, LLM first token 300 ms, TTS 150 ms).
    pub fn resolve(self) -> Result<ProvidersConfig, (String, String)> {
        let llm = self.llm.unwrap_or_default();
        let tts = self.tts.unwrap_or_default();
        let asr = self.asr.unwrap_or_default();
        let replies = match (llm.reply, llm.replies) {
            (Some(_), Some(_)) => return Err(("llm.reply".into(), "give `reply` or `replies`, not both".into())),
            (Some(r), None) => vec![r],
            (None, Some(v)) => v,
            (None, None) => vec![DEFAULT_REPLY.to_string()],
        };
        if replies.is_empty() || replies.iter().any(|r| r.trim().is_empty()) {
            return Err(("llm.replies".into(), "every reply must have some text".into()));
        }
        let pick = llm.pick.unwrap_or(ReplyPick::Seed);
        let ratio = llm.tool_call_ratio.unwrap_or(0.0);
        if !(0.0..=1.0).contains(&ratio) {
            return Err(("llm.tool_call_ratio".into(), "is a share between 0 and 1".into()));
        }
        let tool_arguments = llm.tool_arguments.unwrap_or_else(|| "{}".to_string());
        if serde_json::from_str::<serde_json::Value>(&tool_arguments).is_err() {
            return Err(("llm.tool_arguments".into(), format!("`{tool_arguments}` is not JSON")));
        }
        let sample_rate = tts.sample_rate.unwrap_or(24_000);
        if sample_rate != 16_000 && sample_rate != 24_000 {
            return Err((
                "tts.sample_rate".into(),
                format!("must be 16000 or 24000; got {sample_rate}"),
            ));
        }
        let per_char = tts.per_char.map(|s| s.0).unwrap_or(Duration::from_millis(220));
        if per_char.is_zero() {
            return Err(("tts.per_char".into(), "must be longer than 0ms".into()));
        }
        let rtf = tts.rtf.unwrap_or(1.0);
        if !(rtf.is_finite() && rtf > 0.0) {
            return Err(("tts.rtf".into(), format!("must be a number above 0, got {rtf}")));
        }
        let min_match = asr.min_match.unwrap_or(super::matcher::DEFAULT_MIN_MATCH);
        if !(min_match > 0.0 && min_match <= 1.0) {
            return Err((
                "asr.min_match".into(),
                "is a correlation between 0 (excluded) and 1".into(),
            ));
        }
        Ok(ProvidersConfig {
            listen: self.listen,
            llm_delay_sweep: Vec::new(),
            seed: self.seed.unwrap_or(1),
            llm: LlmConfig {
                first_token: llm.first_token.unwrap_or(ms(300)),
                token_interval: llm.token_interval.unwrap_or(ms(20)),
                replies,
                pick,
                tool_call_ratio: ratio,
                tool: llm.tool.filter(|t| !t.is_empty()),
                tool_arguments,
                workers: workers(llm.workers),
            },
            tts: TtsConfig {
                delay: tts.delay.unwrap_or(ms(150)),
                per_char,
                sample_rate,
                rtf,
                workers: workers(tts.workers),
            },
            asr: AsrConfig {
                delay: asr.delay.unwrap_or(ms(200)),
                fallback: asr.fallback.unwrap_or_else(|| DEFAULT_FALLBACK.to_string()),
                min_match,
                workers: workers(asr.workers),
            },
        })
    }
}

/// Parses `--llm-delay 300ms,1s` (each item in the `Dist` syntax).
pub fn parse_delay_list(text: &str) -> Result<Vec<Dist>, String> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(Dist::parse(&text[start..i])?);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(Dist::parse(&text[start..])?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_sizing_runs_stand_ins() {
        let c = ProvidersConfig::default();
        assert_eq!(c.llm.first_token, ms(300));
        assert_eq!(c.tts.delay, ms(150));
        assert_eq!(c.asr.delay, ms(200));
        assert_eq!(c.tts.sample_rate, 24_000);
        assert_eq!(c.llm.workers, None);
    }

    #[test]
    fn bad_values_name_their_key() {
        let bad = |s: ProvidersSettings| s.resolve().unwrap_err().0;
        let tts = |t: TtsSettings| ProvidersSettings {
            tts: Some(t),
            ..Default::default()
        };
        assert_eq!(
            bad(tts(TtsSettings {
                sample_rate: Some(44_100),
                ..Default::default()
            })),
            "tts.sample_rate"
        );
        assert_eq!(
            bad(tts(TtsSettings {
                rtf: Some(0.0),
                ..Default::default()
            })),
            "tts.rtf"
        );
        let llm = |l: LlmSettings| ProvidersSettings {
            llm: Some(l),
            ..Default::default()
        };
        assert_eq!(
            bad(llm(LlmSettings {
                tool_arguments: Some("{oops".into()),
                ..Default::default()
            })),
            "llm.tool_arguments"
        );
    }

    #[test]
    fn delay_lists_split_outside_parentheses() {
        let v = parse_delay_list("300ms,uniform(1s, 2s), 1s").unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(v[0], ms(300));
        assert_eq!(v[1], Dist::Uniform(Duration::from_secs(1), Duration::from_secs(2)));
        assert!(parse_delay_list("300ms,soon").is_err());
    }
}
