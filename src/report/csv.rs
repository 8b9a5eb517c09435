//! The per-turn CSV report, streamed: one row per finished turn, written
//! and flushed as the collector folds it, so a run that is interrupted or
//! killed keeps every turn that finished before. Columns are one table
//! ([`COLUMNS`]): adding a column is adding a line.
//!
//! Durations are in milliseconds (3 decimals) from end of speech, blank when
//! the turn never got that far; `t_s` is when the turn ended, in seconds from
//! the start of the run (the clock of the report's `series`).

use crate::audio::FRAME;
use crate::metrics::{TurnOutcome, TurnRecord, TurnSink};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::oneshot;

/// One finished turn as the CSV sees it.
pub struct Row<'a> {
    pub at: Duration,
    pub rec: &'a TurnRecord,
}

type Cell = fn(&Row<'_>) -> String;

fn ms(d: Option<Duration>) -> String {
    d.map_or(String::new(), |d| format!("{:.3}", d.as_secs_f64() * 1000.0))
}

/// A downlink datagram count of a turn over MQTT + UDP (blank over WebSocket).
fn datagrams(row: &Row<'_>, f: impl Fn(&crate::protocol::udp::DatagramCounts) -> u64) -> String {
    row.rec.datagrams.as_ref().map_or(String::new(), |d| f(d).to_string())
}

fn playback<T: ToString>(row: &Row<'_>, f: impl Fn(&crate::audio::playback::TurnPlayback) -> T) -> String {
    row.rec.playback.as_ref().map_or(String::new(), |p| f(p).to_string())
}

/// The columns, in order: header name and how to fill the cell.
pub const COLUMNS: &[(&str, Cell)] = &[
    ("t_s", |r| format!("{:.3}", r.at.as_secs_f64())),
    ("device", |r| r.rec.device.to_string()),
    ("conversation", |r| r.rec.conversation.to_string()),
    ("turn", |r| r.rec.turn.to_string()),
    ("clip", |r| r.rec.clip.clone()),
    ("outcome", |r| outcome(r.rec.outcome).to_string()),
    ("failure", |r| match r.rec.outcome {
        TurnOutcome::Failed(kind) => kind.as_str().to_string(),
        _ => String::new(),
    }),
    ("failure_detail", |r| r.rec.detail.clone().unwrap_or_default()),
    ("stt_ms", |r| ms(r.rec.stt)),
    ("llm_ms", |r| ms(r.rec.llm)),
    ("tts_start_ms", |r| ms(r.rec.tts_start)),
    ("first_audio_ms", |r| ms(r.rec.first_audio)),
    ("first_play_ms", |r| ms(r.rec.first_play)),
    ("turn_ms", |r| ms(r.rec.turn_time)),
    ("frames_received", |r| r.rec.frames_received.to_string()),
    ("uplink_frames", |r| r.rec.uplink_frames.to_string()),
    ("think_frames", |r| r.rec.think_frames.to_string()),
    ("stutter", |r| playback(r, |p| p.stutters(FRAME) as u8)),
    ("underruns", |r| playback(r, |p| p.underruns)),
    ("underrun_ms", |r| playback(r, |p| format!("{:.3}", p.underrun_ms))),
    ("sentence_gap_ms", |r| {
        playback(r, |p| format!("{:.3}", p.sentence_gap_ms))
    }),
    ("server_gap_ms", |r| playback(r, |p| format!("{:.3}", p.server_gap_ms))),
    ("network_gap_ms", |r| {
        playback(r, |p| format!("{:.3}", p.network_gap_ms))
    }),
    ("overflow_drops", |r| playback(r, |p| p.overflow_drops)),
    ("dropped_ms", |r| playback(r, |p| format!("{:.3}", p.dropped_ms))),
    ("max_queue_frames", |r| playback(r, |p| p.max_queue_frames)),
    ("tts_audio_ms", |r| playback(r, |p| format!("{:.3}", p.tts_audio_ms))),
    ("datagrams_lost", |r| datagrams(r, |d| d.lost)),
    ("datagrams_reordered", |r| datagrams(r, |d| d.reordered)),
    ("datagrams_duplicated", |r| datagrams(r, |d| d.duplicated)),
    ("extra_answers", |r| r.rec.extra_answers.to_string()),
];

/// The report name of an outcome (`completed`, `failed`, ...).
pub fn outcome(o: TurnOutcome) -> &'static str {
    match o {
        TurnOutcome::Completed => "completed",
        TurnOutcome::Failed(_) => "failed",
        TurnOutcome::Cancelled => "cancelled",
        TurnOutcome::Interrupted => "interrupted",
    }
}

/// Quotes a cell when it holds a comma, quote or line break (RFC 4180).
fn escape(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", cell.replace('"', "\"\"")).into()
    } else {
        cell.into()
    }
}

/// The header line.
pub fn header() -> String {
    let names: Vec<&str> = COLUMNS.iter().map(|(n, _)| *n).collect();
    names.join(",") + "\n"
}

/// One row's line.
pub fn line(row: &Row<'_>) -> String {
    let cells: Vec<String> = COLUMNS.iter().map(|(_, f)| escape(&f(row)).into_owned()).collect();
    cells.join(",") + "\n"
}

/// What a finished CSV stream reports back: rows written, first error.
#[derive(Clone, Debug, Default)]
pub struct CsvStatus {
    pub path: PathBuf,
    pub rows: u64,
    pub error: Option<String>,
}

/// Streams rows into one file; see the module docs.
pub struct CsvStream {
    out: Option<BufWriter<File>>,
    status: CsvStatus,
    done: Option<oneshot::Sender<CsvStatus>>,
}

impl CsvStream {
    /// Creates (truncates) the file and writes the header now, so an
    /// unwritable path fails before the run starts. The receiver gets the
    /// stream's status when the run is over.
    pub fn create(path: &Path) -> std::io::Result<(CsvStream, oneshot::Receiver<CsvStatus>)> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut out = BufWriter::new(File::create(path)?);
        out.write_all(header().as_bytes())?;
        out.flush()?;
        let (tx, rx) = oneshot::channel();
        let status = CsvStatus {
            path: path.to_path_buf(),
            ..CsvStatus::default()
        };
        Ok((
            CsvStream {
                out: Some(out),
                status,
                done: Some(tx),
            },
            rx,
        ))
    }

    fn fail(&mut self, e: std::io::Error) {
        self.out = None;
        self.status.error.get_or_insert_with(|| e.to_string());
    }
}

impl TurnSink for CsvStream {
    fn turn(&mut self, at: Duration, rec: &TurnRecord) {
        let Some(out) = self.out.as_mut() else { return };
        let text = line(&Row { at, rec });
        match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
            Ok(()) => self.status.rows += 1,
            Err(e) => self.fail(e),
        }
    }

    fn finish(&mut self) {
        if let Some(mut out) = self.out.take()
            && let Err(e) = out.get_mut().sync_all()
        {
            self.fail(e);
        }
        if let Some(tx) = self.done.take() {
            let _ = tx.send(self.status.clone());
        }
    }
}

impl Drop for CsvStream {
    fn drop(&mut self) {
        if let Some(tx) = self.done.take() {
            let _ = tx.send(self.status.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::playback::TurnPlayback;

    /// The cells of `line` under the named columns.
    fn cells<'a>(line: &'a str, names: &[&str]) -> Vec<&'a str> {
        let head: Vec<&str> = COLUMNS.iter().map(|(n, _)| *n).collect();
        let row: Vec<&str> = line.trim_end().split(',').collect();
        assert_eq!(row.len(), head.len(), "{line}");
        names
            .iter()
            .map(|n| {
                row[head
                    .iter()
                    .position(|h| h == n)
                    .unwrap_or_else(|| panic!("no column {n}"))]
            })
            .collect()
    }

    #[test]
    fn header_has_the_stutter_cause_and_double_answer_columns() {
        let h = header();
        assert!(
            h.contains(",underrun_ms,sentence_gap_ms,server_gap_ms,network_gap_ms,overflow_drops,dropped_ms,"),
            "{h}"
        );
        assert!(h.ends_with(",datagrams_duplicated,extra_answers\n"), "{h}");
    }

    #[test]
    fn row_carries_each_turns_gap_per_cause_and_extra_answers() {
        let mut rec = TurnRecord::new(3, 0, 1, "a.wav");
        rec.extra_answers = 2;
        rec.playback = Some(TurnPlayback {
            underrun_ms: 300.5,
            server_gap_ms: 60.0,
            network_gap_ms: 240.5,
            overflow_drops: 2,
            dropped_ms: 120.0,
            ..TurnPlayback::default()
        });
        let text = line(&Row {
            at: Duration::from_millis(1500),
            rec: &rec,
        });
        let names = [
            "server_gap_ms",
            "network_gap_ms",
            "dropped_ms",
            "overflow_drops",
            "extra_answers",
        ];
        assert_eq!(cells(&text, &names), ["60.000", "240.500", "120.000", "2", "2"]);
        rec.playback = None;
        let text = line(&Row {
            at: Duration::from_millis(1500),
            rec: &rec,
        });
        assert_eq!(cells(&text, &names), ["", "", "", "", "2"]);
    }
}
