//! Writing one kept turn: a WAV of what the device's speaker played and a
//! JSON timeline of everything the device received.
//!
//! The WAV follows the playback model: only accepted frames (fate `Played`
//! or `Queued`) are heard, in arrival order (the decode queue is FIFO), each
//! starting at its modelled `play_start_ms`; when a frame starts later than
//! the previous one ended, the speaker was starved and the WAV holds zeros
//! for that stretch. Sample counts are rounded from milliseconds separately
//! for each frame and each gap (`round(ms * rate / 1000)`), so the WAV holds
//! exactly Σ rounded(frame durations) + Σ rounded(gaps) samples.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use opus_rs::OpusDecoder;
use serde::Serialize;
use serde_json::{Value, json};
use thiserror::Error;

use super::marks::{Anchor, append_cues, audacity_labels, gap_marks};
use super::trace::{Fate, TraceEntry, TraceItem, TurnTrace};
use std::collections::BTreeMap;

/// The rates an Opus decoder can output.
const DECODE_RATES: [u32; 5] = [8000, 12000, 16000, 24000, 48000];
/// The decode rate when the announced one is not an Opus rate.
const FALLBACK_RATE: u32 = 24000;
/// The longest Opus packet, so any packet fits the decode buffer.
const MAX_PACKET_MS: u32 = 120;

/// Why a recording could not be made.
#[derive(Debug, Error)]
pub enum RecordError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("writing WAV {path}: {source}")]
    Wav { path: PathBuf, source: hound::Error },
    #[error("encoding timeline {path}: {source}")]
    Json { path: PathBuf, source: serde_json::Error },
    #[error("creating the Opus decoder at {rate} Hz: {reason}")]
    Decoder { rate: u32, reason: &'static str },
}

/// One written recording.
#[derive(Clone, Debug, Serialize)]
pub struct Recording {
    pub device_id: String,
    pub conversation: u32,
    pub turn: u32,
    pub wav: PathBuf,
    pub timeline: PathBuf,
    /// The WAV's length.
    pub duration_ms: f64,
    pub underruns: u32,
    pub underrun_ms: f64,
    /// Audacity's label track of the gaps and skips (`None`: nothing to mark).
    pub labels: Option<PathBuf>,
    /// Marks per cause (`server`, `network`, `device`): the WAV's cue points.
    pub marks: BTreeMap<&'static str, u32>,
}

/// Writes `<dir>/dev-<mac>-conv<NN>-turn<NN>.wav` and `.timeline.json` (creating
/// `dir` if missing), and when the turn stuttered, the WAV's cue points and
/// `.labels.txt` (see [`super::marks`]). The written timeline is
/// [`timeline_json`] plus `undecodable_frames` and `gap_marks`, which only
/// rendering can tell.
pub fn write_recording(dir: &Path, trace: &TurnTrace) -> Result<Recording, RecordError> {
    fs::create_dir_all(dir).map_err(io_error(dir))?;
    let rendered = render(trace)?;
    let stem = file_stem(trace);
    let wav = dir.join(format!("{stem}.wav"));
    let timeline = dir.join(format!("{stem}.timeline.json"));
    write_wav(&wav, rendered.rate, &rendered.samples)?;
    let end = rendered.samples.len() as u64;
    let marks = gap_marks(trace, &rendered.anchors, rendered.rate, end);
    append_cues(&wav, &marks).map_err(io_error(&wav))?;
    let labels = (!marks.is_empty()).then(|| dir.join(format!("{stem}.labels.txt")));
    if let Some(path) = &labels {
        fs::write(path, audacity_labels(&marks, rendered.rate)).map_err(io_error(path))?;
    }

    let mut value = timeline_json(trace);
    if let Value::Object(map) = &mut value {
        map.insert("undecodable_frames".into(), rendered.undecodable_frames.into());
        map.insert("gap_marks".into(), serde_json::to_value(&marks).unwrap_or_default());
    }
    let path = timeline.clone();
    let text = serde_json::to_vec_pretty(&value).map_err(|source| RecordError::Json { path, source })?;
    fs::write(&timeline, text).map_err(io_error(&timeline))?;

    Ok(Recording {
        device_id: trace.device_id.clone(),
        conversation: trace.conversation,
        turn: trace.turn,
        wav,
        timeline,
        duration_ms: rendered.samples.len() as f64 * 1000.0 / f64::from(rendered.rate),
        underruns: trace.underruns,
        underrun_ms: trace.underrun_ms,
        labels,
        marks: marks.iter().fold(BTreeMap::new(), |mut m, g| {
            *m.entry(g.cause).or_default() += 1;
            m
        }),
    })
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> RecordError {
    let path = path.to_path_buf();
    move |source| RecordError::Io { path, source }
}

/// The samples the device's speaker played (mono, 16-bit) at the decode
/// rate: the announced rate, or 24 kHz if that is not an Opus rate.
pub fn render_wav(trace: &TurnTrace) -> Result<Vec<i16>, RecordError> {
    render(trace).map(|rendered| rendered.samples)
}

/// The turn's timeline: its summary (with `failed` and, for a failed turn,
/// `failure: {kind, detail}`), every received entry and the underrun spans
/// with their cause (`server` or `network`) and its parts; milliseconds
/// rounded to 3 decimals.
pub fn timeline_json(trace: &TurnTrace) -> Value {
    let rate = decode_rate(trace.sample_rate);
    let mut value = json!({
        "device_id": trace.device_id,
        "conversation": trace.conversation,
        "turn": trace.turn,
        "clip": trace.clip,
        "outcome": trace.outcome,
        "failed": trace.failure.is_some(),
        "failure": trace.failure,
        "sample_rate": trace.sample_rate,
        "wav_sample_rate": rate,
        "first_audio_ms": trace.first_audio_ms.map(round_ms),
        "turn_ms": trace.turn_ms.map(round_ms),
        "underruns": trace.underruns,
        "underrun_ms": round_ms(trace.underrun_ms),
        "overflow_drops": trace.overflow_drops,
        "wav": format!("{}.wav", file_stem(trace)),
        "entries": trace.entries.iter().map(entry_json).collect::<Vec<_>>(),
        "underrun_spans": trace.gaps.iter().map(|gap| json!({
            "start_ms": round_ms(gap.start_ms),
            "end_ms": round_ms(gap.end_ms),
            "duration_ms": round_ms(gap.end_ms - gap.start_ms),
            "between_sentences": gap.between_sentences,
            "cause": gap.cause,
            "server_ms": round_ms(gap.server_ms),
            "network_ms": round_ms(gap.network_ms),
        })).collect::<Vec<_>>(),
    });
    if rate != trace.sample_rate
        && let Value::Object(map) = &mut value
    {
        let note = format!(
            "announced {} Hz is not an Opus rate; decoded at {rate} Hz",
            trace.sample_rate
        );
        map.insert("note".into(), note.into());
    }
    value
}

fn entry_json(entry: &TraceEntry) -> Value {
    match &entry.item {
        TraceItem::Text(text) => json!({
            "at_ms": round_ms(entry.at_ms),
            "kind": "text",
            "text": serde_json::from_str::<Value>(text).unwrap_or_else(|_| Value::String(text.clone())),
            "queue_depth": entry.queue_depth,
        }),
        TraceItem::Frame {
            packet,
            fate,
            play_start_ms,
            duration_ms,
        } => json!({
            "at_ms": round_ms(entry.at_ms),
            "kind": "frame",
            "bytes": packet.len(),
            "fate": fate,
            "play_start_ms": play_start_ms.map(round_ms),
            "duration_ms": round_ms(*duration_ms),
            "queue_depth": entry.queue_depth,
        }),
    }
}

fn round_ms(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

/// `dev-<device id without ':'>-conv<NN>-turn<NN>`: unique per turn of a
/// run. Any other character that is not alphanumeric, '-' or '_' becomes
/// '_' so the id cannot leave `dir`.
fn file_stem(trace: &TurnTrace) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    let id: String = trace
        .device_id
        .chars()
        .filter(|&c| c != ':')
        .map(|c| if safe(c) { c } else { '_' })
        .collect();
    format!("dev-{id}-conv{:02}-turn{:02}", trace.conversation, trace.turn)
}

fn decode_rate(announced: u32) -> u32 {
    DECODE_RATES
        .into_iter()
        .find(|&rate| rate == announced)
        .unwrap_or(FALLBACK_RATE)
}

/// `ms` of audio at `rate` as a whole number of samples (rounded).
fn samples_for(ms: f64, rate: u32) -> usize {
    (ms * f64::from(rate) / 1000.0).round().max(0.0) as usize
}

/// The rendered audio of a turn.
#[derive(Debug, Default)]
struct Rendered {
    samples: Vec<i16>,
    rate: u32,
    undecodable_frames: u32,
    /// Where each heard frame starts in `samples`.
    anchors: Vec<Anchor>,
}

fn render(trace: &TurnTrace) -> Result<Rendered, RecordError> {
    let rate = decode_rate(trace.sample_rate);
    let mut decoder = OpusDecoder::new(rate as i32, 1).map_err(|reason| RecordError::Decoder { rate, reason })?;
    let max_packet = samples_for(f64::from(MAX_PACKET_MS), rate);
    let mut pcm = Vec::new();
    let mut out = Rendered {
        rate,
        ..Rendered::default()
    };
    let mut prev_end: Option<f64> = None;
    for entry in &trace.entries {
        let TraceItem::Frame {
            packet,
            fate,
            play_start_ms,
            duration_ms,
        } = &entry.item
        else {
            continue;
        };
        if !matches!(fate, Fate::Played | Fate::Queued) {
            continue;
        }
        let start = play_start_ms.or(prev_end).unwrap_or(0.0);
        if let Some(end) = prev_end
            && start > end
        {
            // The speaker ran dry: the user hears silence.
            let gap = samples_for(start - end, rate);
            out.samples.resize(out.samples.len() + gap, 0);
        }
        prev_end = Some(start + duration_ms);
        out.anchors.push((start, out.samples.len() as u64));

        let frame = samples_for(*duration_ms, rate);
        if frame == 0 {
            continue;
        }
        // Room for the longest packet: one longer than recorded still decodes, then is truncated.
        let capacity = frame.max(max_packet);
        pcm.clear();
        pcm.resize(capacity, 0.0f32);
        match decoder.decode(packet, capacity, &mut pcm) {
            Ok(got) => {
                let got = got.min(frame);
                out.samples.extend(pcm[..got].iter().map(|&s| to_i16(s)));
                out.samples.resize(out.samples.len() + (frame - got), 0);
            }
            Err(_) => {
                out.undecodable_frames += 1;
                out.samples.resize(out.samples.len() + frame, 0);
            }
        }
    }
    Ok(out)
}

fn to_i16(sample: f32) -> i16 {
    (sample * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

fn write_wav(path: &Path, rate: u32, samples: &[i16]) -> Result<(), RecordError> {
    let wav_err = |source| RecordError::Wav {
        path: path.to_path_buf(),
        source,
    };
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).map_err(wav_err)?;
    for &sample in samples {
        writer.write_sample(sample).map_err(wav_err)?;
    }
    writer.finalize().map_err(wav_err)
}

#[cfg(test)]
#[path = "write_tests.rs"]
mod tests;
