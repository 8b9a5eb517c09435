//! The mock server's settings: the `[mock]` table of a fleet file (or
//! `mock-server --config FILE`), resolved into [`MockConfig`].

use super::burn::BurnThreads;
use super::fault::{FaultPlan, FaultSettings};
use super::ota::OtaOffer;
use super::ota_fault::{OtaFault, OtaFaultKind};
use super::pacing::DownlinkMode;
use crate::dist::Dist;
use crate::units::Span;
use serde::Deserialize;
use std::time::Duration;

/// `[mock]` as written. Unknown keys are errors.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MockSettings {
    /// End of speech → `stt` (ASR time).
    pub asr_delay: Option<Span>,
    /// `stt` → first LLM token (`llm` message).
    pub llm_delay: Option<Span>,
    /// First LLM token → first sentence's audio ready.
    pub tts_delay: Option<Span>,
    /// Each later sentence's audio is ready this long after the previous one
    /// (a distribution: `300ms`, `uniform(200ms, 3s)`, `exp(1s)`, ...).
    pub sentence_delay: Option<Dist>,
    /// TTS real-time factor: audio made per unit of synthesis time (0.8: a
    /// 60 ms frame takes 75 ms), streamed frame by frame; 1 or more (the
    /// default): each sentence's audio is all there when it is ready.
    pub tts_rtf: Option<f64>,
    /// Downlink pacing: `realtime` (the real server), `burst`, `jitter`, `stall`.
    pub downlink: Option<DownlinkChoice>,
    /// `jitter`: largest extra delay per frame.
    pub jitter_max: Option<Span>,
    /// `stall`: after this many frames of a turn...
    pub stall_after: Option<u32>,
    /// ...the next frame comes this long after the previous one.
    pub stall: Option<Span>,
    /// Seed for the mock's random draws (jitter, sentence delays).
    pub seed: Option<u64>,
    /// Real CPU time burned by each answer stage (ASR, LLM, each TTS sentence).
    pub cpu_burn: Option<Span>,
    /// Where to burn it: `pool` (many threads) or `single` (one hot thread).
    pub cpu_burn_threads: Option<BurnThreads>,
    /// Sentences per answer.
    pub sentences: Option<u32>,
    /// Trailing silence that ends an utterance (VAD window W).
    pub silence_window: Option<Span>,
    /// Utterances of this many packets or fewer get no answer (PY: 15).
    pub min_utterance_frames: Option<u32>,
    /// Concurrent ASR / LLM / TTS jobs; 0 = unbounded.
    pub asr_workers: Option<usize>,
    pub llm_workers: Option<usize>,
    pub tts_workers: Option<usize>,
    /// No voice and no TTS for this long → goodbye turn and close (PY: 120 s).
    pub idle_timeout: Option<Span>,
    /// Run MCP discovery after the hello, like PY.
    pub mcp: Option<bool>,
    /// Require `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// `listen detect` texts treated as wake words.
    pub wake_words: Option<Vec<String>>,
    /// Injected faults (`[[mock.fault]]`); none by default.
    pub fault: Option<Vec<FaultSettings>>,
    /// What the OTA endpoint offers: `websocket` (default) or `mqtt`.
    pub ota: Option<OtaOffer>,
    /// Unbound devices get an activation code and wait until bound, as on
    /// the admin API (default false: every device is served).
    pub activation: Option<bool>,
    /// The `Authorization: Bearer` token the bind calls require.
    pub manager_token: Option<String>,
    /// An unusable OTA answer: `http_500`, `html`, `missing_fields`,
    /// `bad_websocket_url`.
    pub ota_fault: Option<OtaFaultKind>,
    /// Share of devices that get `ota_fault` (default 1: every device).
    pub ota_fault_p: Option<f64>,
    /// Run the MQTT + UDP gateway (default: on when `ota = "mqtt"`).
    pub mqtt: Option<bool>,
    /// The gateway's MQTT (TCP) port; 0 = any free port (default).
    pub mqtt_port: Option<u16>,
    /// The gateway's UDP audio port; 0 = any free port (default).
    pub udp_port: Option<u16>,
    /// PY's `mqtt_signature_key`: the OTA signs MQTT passwords with it and
    /// the gateway checks them (default: none, passwords not checked).
    pub mqtt_signature_key: Option<String>,
}

/// `downlink` as written; its parameters are the keys beside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DownlinkChoice {
    Realtime,
    Burst,
    Jitter,
    Stall,
}

/// Resolved mock settings (serialized to hand them to a mock child process).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MockConfig {
    pub asr_delay: Duration,
    pub llm_delay: Duration,
    pub tts_delay: Duration,
    pub sentence_delay: Dist,
    /// TTS real-time factor (1: the provider keeps ahead of playback).
    #[serde(default = "one")]
    pub tts_rtf: f64,
    pub downlink: DownlinkMode,
    pub seed: u64,
    pub cpu_burn: Duration,
    pub cpu_burn_threads: BurnThreads,
    pub sentences: u32,
    pub silence_window: Duration,
    pub min_utterance_frames: u32,
    pub asr_workers: Option<usize>,
    pub llm_workers: Option<usize>,
    pub tts_workers: Option<usize>,
    pub idle_timeout: Duration,
    pub mcp: bool,
    pub token: Option<String>,
    pub wake_words: Vec<String>,
    /// Faults to inject, drawn from `seed`.
    pub faults: FaultPlan,
    /// What the OTA endpoint offers.
    #[serde(default)]
    pub ota: OtaOffer,
    /// Unbound devices wait for activation.
    #[serde(default)]
    pub activation: bool,
    /// The token of the bind calls.
    #[serde(default)]
    pub manager_token: Option<String>,
    /// The OTA endpoint's fault, if any.
    #[serde(default)]
    pub ota_fault: Option<OtaFault>,
    /// The MQTT + UDP gateway, when it runs.
    #[serde(default)]
    pub gateway: Option<GatewayPorts>,
    /// Signs (OTA) and checks (gateway) MQTT passwords, when set.
    #[serde(default)]
    pub mqtt_signature_key: Option<String>,
}

/// Where the MQTT + UDP gateway listens (on the mock's IP; 0 = any free port).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GatewayPorts {
    pub mqtt: u16,
    pub udp: u16,
}

impl Default for MockConfig {
    fn default() -> Self {
        match MockSettings::default().resolve() {
            Ok(c) => c,
            Err((k, m)) => unreachable!("defaults are valid ({k}: {m})"),
        }
    }
}

impl MockSettings {
    /// Fills defaults and checks values; errors are `(key, message)`.
    ///
    /// Defaults follow PROTOCOL.md §13 (a real PY server with fast providers:
    /// `stt` ≈ 0.5 s and first audio ≈ 1.3 s after end of speech) and §9.2
    /// (shipped VAD: 200 ms of silence plus ~100 ms of smoothing-window lag;
    /// utterances of ≤ 15 packets are discarded).
    pub fn resolve(mut self) -> Result<MockConfig, (String, String)> {
        let d = |s: Option<Span>, ms: u64| s.map(|s| s.0).unwrap_or(Duration::from_millis(ms));
        let workers = |w: Option<usize>| w.filter(|&n| n > 0);
        let seed = self.seed.unwrap_or(1);
        let faults = FaultPlan {
            faults: (self.fault.take().unwrap_or_default().into_iter().enumerate())
                .map(|(i, f)| f.resolve().map_err(|(k, m)| (format!("fault[{i}].{k}"), m)))
                .collect::<Result<_, _>>()?,
            seed,
        };
        let ota = self.ota.unwrap_or_default();
        let gateway = self.gateway(ota, &faults)?;
        let cfg = MockConfig {
            asr_delay: d(self.asr_delay, 200),
            llm_delay: d(self.llm_delay, 550),
            tts_delay: d(self.tts_delay, 250),
            sentence_delay: self.sentence_delay.unwrap_or(Dist::Fixed(Duration::from_millis(300))),
            tts_rtf: self.tts_rtf.unwrap_or(1.0),
            downlink: match self.downlink.unwrap_or(DownlinkChoice::Realtime) {
                DownlinkChoice::Realtime => DownlinkMode::Realtime,
                DownlinkChoice::Burst => DownlinkMode::Burst,
                DownlinkChoice::Jitter => DownlinkMode::Jitter {
                    max: d(self.jitter_max, 100),
                },
                DownlinkChoice::Stall => DownlinkMode::Stall {
                    after: self.stall_after.unwrap_or(10),
                    pause: d(self.stall, 500),
                },
            },
            seed,
            cpu_burn: d(self.cpu_burn, 0),
            cpu_burn_threads: self.cpu_burn_threads.unwrap_or_default(),
            sentences: self.sentences.unwrap_or(2),
            silence_window: d(self.silence_window, 300),
            min_utterance_frames: self.min_utterance_frames.unwrap_or(15),
            asr_workers: workers(self.asr_workers),
            llm_workers: workers(self.llm_workers),
            tts_workers: workers(self.tts_workers),
            idle_timeout: d(self.idle_timeout, 120_000),
            mcp: self.mcp.unwrap_or(true),
            token: self.token.filter(|t| !t.is_empty()),
            ota,
            activation: self.activation.unwrap_or(false),
            manager_token: self.manager_token.filter(|t| !t.is_empty()),
            ota_fault: ota_fault(self.ota_fault, self.ota_fault_p)?,
            gateway,
            mqtt_signature_key: self.mqtt_signature_key.filter(|k| !k.is_empty()),
            wake_words: self.wake_words.unwrap_or_else(|| vec!["你好小智".to_string()]),
            faults,
        };
        if !(cfg.tts_rtf.is_finite() && cfg.tts_rtf > 0.0) {
            return Err((
                "tts_rtf".into(),
                format!("must be a number above 0, got {}", cfg.tts_rtf),
            ));
        }
        if cfg.sentences == 0 {
            return Err(("sentences".into(), "must be at least 1".into()));
        }
        if cfg.silence_window.is_zero() {
            return Err(("silence_window".into(), "must be longer than 0ms".into()));
        }
        if cfg.idle_timeout < Duration::from_secs(1) {
            return Err(("idle_timeout".into(), "must be at least 1s".into()));
        }
        Ok(cfg)
    }

    /// The gateway's ports if it runs: `mqtt = true`, or `ota = "mqtt"`
    /// (whose answer points at it). Gateway-only faults need it.
    fn gateway(&self, ota: OtaOffer, faults: &FaultPlan) -> Result<Option<GatewayPorts>, (String, String)> {
        let on = self.mqtt.unwrap_or(ota == OtaOffer::Mqtt);
        if !on {
            if ota == OtaOffer::Mqtt {
                return Err((
                    "mqtt".into(),
                    "`ota = \"mqtt\"` points devices at the gateway: it cannot be off".into(),
                ));
            }
            if let Some(key) = [
                ("mqtt_port", self.mqtt_port.is_some()),
                ("udp_port", self.udp_port.is_some()),
            ]
            .into_iter()
            .find_map(|(k, set)| set.then_some(k))
            {
                return Err((key.into(), "needs the gateway: add `mqtt = true`".into()));
            }
            if let Some((i, kind)) = faults.first_gateway_only() {
                return Err((
                    format!("fault[{i}].kind"),
                    format!(
                        "`{}` needs the MQTT + UDP gateway: add `mqtt = true` to [mock]",
                        kind.name()
                    ),
                ));
            }
            return Ok(None);
        }
        Ok(Some(GatewayPorts {
            mqtt: self.mqtt_port.unwrap_or(0),
            udp: self.udp_port.unwrap_or(0),
        }))
    }
}

fn one() -> f64 {
    1.0
}

/// `ota_fault` with its share; `ota_fault_p` alone, or outside 0..=1, is an error.
fn ota_fault(kind: Option<OtaFaultKind>, p: Option<f64>) -> Result<Option<OtaFault>, (String, String)> {
    let p_ok = |p: f64| (0.0..=1.0).contains(&p);
    match (kind, p) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(("ota_fault_p".into(), "needs ota_fault".into())),
        (Some(_), Some(p)) if !p_ok(p) => Err(("ota_fault_p".into(), "must be between 0 and 1".into())),
        (Some(kind), p) => Ok(Some(OtaFault {
            kind,
            p: p.unwrap_or(1.0),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_real_servers_shipped_vad() {
        let c = MockConfig::default();
        assert_eq!(c.silence_window, Duration::from_millis(300));
        assert_eq!(c.min_utterance_frames, 15);
        assert_eq!(c.asr_workers, None);
    }

    #[test]
    fn zero_workers_means_unbounded_and_zero_sentences_is_rejected() {
        let s = MockSettings {
            llm_workers: Some(0),
            ..MockSettings::default()
        };
        assert_eq!(s.resolve().unwrap().llm_workers, None);
        let s = MockSettings {
            sentences: Some(0),
            ..MockSettings::default()
        };
        assert_eq!(s.resolve().unwrap_err().0, "sentences");
    }

    #[test]
    fn tts_rtf_defaults_to_one_and_must_be_above_zero() {
        assert_eq!(MockConfig::default().tts_rtf, 1.0);
        let rtf = |v: f64| {
            MockSettings {
                tts_rtf: Some(v),
                ..MockSettings::default()
            }
            .resolve()
        };
        assert_eq!(rtf(0.8).unwrap().tts_rtf, 0.8);
        for bad in [0.0, -1.0, f64::NAN] {
            assert_eq!(rtf(bad).unwrap_err().0, "tts_rtf", "{bad}");
        }
    }

    #[test]
    fn ota_fault_share_defaults_to_every_device_and_needs_a_kind() {
        let s = MockSettings {
            ota_fault: Some(OtaFaultKind::Html),
            ..MockSettings::default()
        };
        assert_eq!(s.resolve().unwrap().ota_fault.map(|f| f.p), Some(1.0));
        let s = MockSettings {
            ota_fault_p: Some(0.5),
            ..MockSettings::default()
        };
        assert_eq!(s.resolve().unwrap_err().0, "ota_fault_p");
        let s = MockSettings {
            ota_fault: Some(OtaFaultKind::Http500),
            ota_fault_p: Some(1.5),
            ..MockSettings::default()
        };
        assert_eq!(s.resolve().unwrap_err().0, "ota_fault_p");
    }
}

#[cfg(test)]
mod fault_tests {
    use crate::config::FleetFile;
    use crate::config::plan::{Overrides, Plan};
    use crate::mock::FaultKind;
    use crate::mock::fault::Pick;

    const FAULTS: &str = "devices = 1\n\n[mock]\nseed = 7\n\n[[mock.fault]]\nkind = \"close_mid_tts\"\np = 0.05\n\n[[mock.fault]]\nkind = \"reject_upgrade\"\nconnections = [0, 2]\nstatus = 503\n";

    #[test]
    fn fault_tables_resolve_in_file_order_with_the_mock_seed() {
        let raw = FleetFile::parse(FAULTS, "f.toml").unwrap();
        let plan = Plan::from_file(raw, "f.toml", &Overrides::default()).unwrap();
        let f = &plan.mock.faults;
        assert_eq!(f.seed, 7);
        assert_eq!(f.faults[0].kind, FaultKind::CloseMidTts);
        assert_eq!(f.faults[0].pick, Pick::Probability(0.05));
        assert_eq!(f.faults[1].status, 503);
        assert_eq!(f.faults[1].pick, Pick::Indices(vec![0, 2]));
    }

    #[test]
    fn unknown_fault_kind_or_key_names_file_and_line() {
        let text = "[mock]\n[[mock.fault]]\nkind = \"explode\"\np = 0.1\n";
        let err = FleetFile::parse(text, "f.toml").unwrap_err().to_string();
        assert!(err.starts_with("f.toml:3:"), "{err}");
        assert!(err.contains("explode") && err.contains("close_mid_tts"), "{err}");
        let text = "[mock]\n[[mock.fault]]\nkind = \"no_stt\"\nturn = [3]\n";
        let err = FleetFile::parse(text, "f.toml").unwrap_err().to_string();
        assert!(err.starts_with("f.toml:4:"), "{err}");
        assert!(err.contains("turn"), "{err}");
    }

    #[test]
    fn gateway_faults_without_the_gateway_name_the_line() {
        let text = "[mock]\n[[mock.fault]]\nkind = \"no_stt\"\np = 0.1\n[[mock.fault]]\nkind = \"udp_loss\"\np = 0.1\n";
        let raw = FleetFile::parse(text, "f.toml").unwrap();
        let err = Plan::from_file(raw, "f.toml", &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("f.toml:6") && err.contains("mqtt = true"), "{err}");
        let on = text.replace("[mock]\n", "[mock]\nmqtt = true\n");
        let raw = FleetFile::parse(&on, "f.toml").unwrap();
        let plan = Plan::from_file(raw, "f.toml", &Overrides::default()).unwrap();
        assert_eq!(plan.mock.gateway, Some(crate::mock::GatewayPorts::default()));
    }

    #[test]
    fn a_key_of_another_kind_is_named_with_its_table() {
        let text = "[mock]\n[[mock.fault]]\nkind = \"no_stt\"\np = 0.1\n[[mock.fault]]\nkind = \"bad_json\"\np = 0.1\ndelay = \"1s\"\n";
        let raw = FleetFile::parse(text, "f.toml").unwrap();
        let err = Plan::from_file(raw, "f.toml", &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("mock.fault[1].delay"), "{err}");
        assert!(err.contains("slow_handshake"), "{err}");
    }
}
