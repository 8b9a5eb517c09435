//! Each stutter of a recorded turn marked where it is heard, with its
//! cause: a gap (silence; the server's or the network's, after the device's
//! attribution) or audio the device dropped (a skip; the device's). The
//! marks go three ways: into the timeline JSON (`gap_marks`), into the WAV
//! as cue points with labels (a `cue ` chunk and a `LIST`/`adtl` chunk of
//! `labl` and `ltxt` entries, which hound does not write: appended by hand
//! after it finishes, the RIFF size fixed), read by Audition, Reaper,
//! ocenaudio and Wavosaur; and a label track Audacity imports
//! (File › Import › Labels), `<stem>.labels.txt`.
//!
//! Positions are exact sample offsets in the rendered WAV: the renderer
//! reports where each accepted frame starts (`anchors`), and a gap is the
//! silence that ends where its late frame starts.

use super::trace::{Fate, GapCause, TraceItem, TurnTrace};
use serde::Serialize;
use std::io::{self, Seek, SeekFrom, Write};
use std::path::Path;

/// One marked stutter.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GapMark {
    /// First sample of the mark in the WAV.
    pub sample: u64,
    /// Its length in samples (0 for a skip: dropped audio is not there).
    pub samples: u64,
    /// `sample` in ms of the WAV.
    pub wav_ms: f64,
    /// When it happened, ms from end of speech (the timeline's clock).
    pub at_ms: f64,
    /// The silence heard, or the audio dropped, in ms.
    pub duration_ms: f64,
    /// `server`, `network` or `device`.
    pub cause: &'static str,
    /// What an operator reads on the marker.
    pub label: String,
}

/// Whole ms, or tenths below 10 ms (a 0.4 ms gap is not "0 ms").
fn ms_text(ms: f64) -> String {
    if ms < 10.0 && (ms * 10.0).round() > 0.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.0}")
    }
}

/// Where a rendered frame starts: (its `play_start_ms`, its first sample).
pub type Anchor = (f64, u64);

fn wav_ms(sample: u64, rate: u32) -> f64 {
    (sample as f64 * 1000.0 / f64::from(rate) * 1000.0).round() / 1000.0
}

/// The sample at which the frame starting at `ms` starts, if rendered.
fn anchor_at(anchors: &[Anchor], ms: f64) -> Option<u64> {
    anchors.iter().find(|a| (a.0 - ms).abs() < 0.5).map(|a| a.1)
}

/// The marks of a turn, in WAV order. `anchors` are the rendered frames'
/// starts, `rate` the WAV's, `end` its length in samples.
pub fn gap_marks(trace: &TurnTrace, anchors: &[Anchor], rate: u32, end: u64) -> Vec<GapMark> {
    let mut marks = Vec::new();
    for g in &trace.gaps {
        let Some(resume) = anchor_at(anchors, g.end_ms) else {
            continue;
        };
        let len = ((g.end_ms - g.start_ms) * f64::from(rate) / 1000.0).round().max(0.0) as u64;
        let sample = resume.saturating_sub(len);
        let cause = match g.cause {
            GapCause::Server => "server",
            GapCause::Network => "network",
        };
        let duration_ms = g.end_ms - g.start_ms;
        marks.push(GapMark {
            sample,
            samples: len,
            wav_ms: wav_ms(sample, rate),
            at_ms: g.start_ms,
            duration_ms,
            cause,
            label: format!(
                "{cause}: {} ms gap (server {} ms, network {} ms)",
                ms_text(duration_ms),
                ms_text(g.server_ms),
                ms_text(g.network_ms)
            ),
        });
    }
    marks.extend(drop_marks(trace, anchors, rate, end));
    marks.sort_by_key(|m| m.sample);
    marks
}

/// One mark per run of dropped frames, where the audio skips: the start of
/// the next frame heard after them (or the WAV's end).
fn drop_marks(trace: &TurnTrace, anchors: &[Anchor], rate: u32, end: u64) -> Vec<GapMark> {
    let mut marks = Vec::new();
    let mut run: Option<(f64, f64, u32)> = None; // (first at_ms, ms, frames)
    let mut close = |run: &mut Option<(f64, f64, u32)>, sample: u64| {
        if let Some((at_ms, ms, frames)) = run.take() {
            let plural = if frames == 1 { "" } else { "s" };
            marks.push(GapMark {
                sample,
                samples: 0,
                wav_ms: wav_ms(sample, rate),
                at_ms,
                duration_ms: ms,
                cause: "device",
                label: format!("device: {frames} frame{plural} dropped ({ms:.0} ms), decode queue full"),
            });
        }
    };
    for e in &trace.entries {
        let TraceItem::Frame {
            fate,
            play_start_ms,
            duration_ms,
            ..
        } = &e.item
        else {
            continue;
        };
        match fate {
            Fate::Dropped => {
                let r = run.get_or_insert((e.at_ms, 0.0, 0));
                r.1 += duration_ms;
                r.2 += 1;
            }
            Fate::Played | Fate::Queued if run.is_some() => {
                let at = play_start_ms.and_then(|ms| anchor_at(anchors, ms)).unwrap_or(end);
                close(&mut run, at);
            }
            _ => {}
        }
    }
    close(&mut run, end);
    marks
}

/// The `cue ` and `LIST`/`adtl` chunks for `marks` (cue ids from 1).
pub fn cue_chunks(marks: &[GapMark]) -> Vec<u8> {
    let mut cue = Vec::new();
    cue.extend_from_slice(&(marks.len() as u32).to_le_bytes());
    let mut adtl = b"adtl".to_vec();
    for (i, m) in marks.iter().enumerate() {
        let id = i as u32 + 1;
        let pos = u32::try_from(m.sample).unwrap_or(u32::MAX);
        for v in [id, pos] {
            cue.extend_from_slice(&v.to_le_bytes());
        }
        cue.extend_from_slice(b"data");
        for v in [0u32, 0, pos] {
            cue.extend_from_slice(&v.to_le_bytes());
        }
        let mut labl = id.to_le_bytes().to_vec();
        labl.extend_from_slice(m.label.as_bytes());
        labl.push(0);
        chunk(&mut adtl, b"labl", &labl);
        // A region as long as the silence ("rgn "; country, language,
        // dialect and code page 0).
        let mut ltxt = id.to_le_bytes().to_vec();
        ltxt.extend_from_slice(&u32::try_from(m.samples).unwrap_or(u32::MAX).to_le_bytes());
        ltxt.extend_from_slice(b"rgn ");
        ltxt.extend_from_slice(&[0u8; 8]);
        chunk(&mut adtl, b"ltxt", &ltxt);
    }
    let mut out = Vec::new();
    chunk(&mut out, b"cue ", &cue);
    chunk(&mut out, b"LIST", &adtl);
    out
}

/// A RIFF chunk: id, little-endian size, body, a pad byte to even length.
fn chunk(out: &mut Vec<u8>, id: &[u8; 4], body: &[u8]) {
    out.extend_from_slice(id);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body);
    if body.len() % 2 == 1 {
        out.push(0);
    }
}

/// Appends the cue chunks to a finished WAV and fixes its RIFF size.
pub fn append_cues(path: &Path, marks: &[GapMark]) -> io::Result<()> {
    if marks.is_empty() {
        return Ok(());
    }
    let mut f = std::fs::OpenOptions::new().read(true).write(true).open(path)?;
    let end = f.seek(SeekFrom::End(0))?;
    f.write_all(&cue_chunks(marks))?;
    let len = f.seek(SeekFrom::End(0))?;
    let riff = u32::try_from(len - 8).map_err(|_| io::Error::other(format!("WAV over 4 GiB ({end} bytes)")))?;
    f.seek(SeekFrom::Start(4))?;
    f.write_all(&riff.to_le_bytes())?;
    f.sync_all()
}

/// Audacity's label track: `start<TAB>end<TAB>label`, seconds.
pub fn audacity_labels(marks: &[GapMark], rate: u32) -> String {
    let s = |n: u64| n as f64 / f64::from(rate);
    marks
        .iter()
        .map(|m| format!("{:.6}\t{:.6}\t{}\n", s(m.sample), s(m.sample + m.samples), m.label))
        .collect()
}

#[cfg(test)]
#[path = "marks_tests.rs"]
mod tests;
