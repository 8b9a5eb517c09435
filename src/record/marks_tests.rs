//! Tests of the gap marks: positions and causes, the cue chunks' bytes, a
//! WAV with cues appended still read by hound, the Audacity label track.

use super::*;
use crate::record::trace::{Gap, TraceEntry, TurnTrace};
use bytes::Bytes;

const RATE: u32 = 24_000;

fn frame(at_ms: f64, fate: Fate, play_start_ms: Option<f64>) -> TraceEntry {
    TraceEntry {
        at_ms,
        queue_depth: 0,
        item: TraceItem::Frame {
            packet: Bytes::new(),
            fate,
            play_start_ms,
            duration_ms: 60.0,
        },
    }
}

fn gap(start_ms: f64, end_ms: f64, server_ms: f64, cause: GapCause) -> Gap {
    Gap {
        start_ms,
        end_ms,
        between_sentences: false,
        server_ms,
        network_ms: end_ms - start_ms - server_ms,
        cause,
    }
}

/// Frames heard at 1000, 1060, [server gap 1120..1420] 1420, [network gap
/// 1480..1780] 1780, then two frames dropped, then one heard at 1840.
fn trace() -> (TurnTrace, Vec<Anchor>) {
    let entries = vec![
        frame(1000.0, Fate::Played, Some(1000.0)),
        frame(1000.0, Fate::Queued, Some(1060.0)),
        frame(1420.0, Fate::Played, Some(1420.0)),
        frame(1780.0, Fate::Played, Some(1780.0)),
        frame(1790.0, Fate::Dropped, None),
        frame(1791.0, Fate::Dropped, None),
        frame(1792.0, Fate::Queued, Some(1840.0)),
    ];
    let trace = TurnTrace {
        device: 0,
        device_id: "d".into(),
        conversation: 0,
        turn: 0,
        failure: None,
        clip: "c".into(),
        sample_rate: RATE,
        outcome: "completed".into(),
        underrun_ms: 600.0,
        underruns: 2,
        overflow_drops: 2,
        first_audio_ms: None,
        turn_ms: None,
        entries,
        gaps: vec![
            gap(1120.0, 1420.0, 250.0, GapCause::Server),
            gap(1480.0, 1780.0, 20.0, GapCause::Network),
        ],
    };
    // 60 ms = 1440 samples; 300 ms of silence = 7200.
    let anchors = vec![
        (1000.0, 0),
        (1060.0, 1440),
        (1420.0, 10_080),
        (1780.0, 18_720),
        (1840.0, 20_160),
    ];
    (trace, anchors)
}

#[test]
fn each_gap_and_skip_is_marked_where_it_is_heard_with_its_cause() {
    let (trace, anchors) = trace();
    let marks = gap_marks(&trace, &anchors, RATE, 21_600);
    let got: Vec<(u64, u64, f64, &str, &str)> = marks
        .iter()
        .map(|m| (m.sample, m.samples, m.wav_ms, m.cause, m.label.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                2880,
                7200,
                120.0,
                "server",
                "server: 300 ms gap (server 250 ms, network 50 ms)"
            ),
            (
                11_520,
                7200,
                480.0,
                "network",
                "network: 300 ms gap (server 20 ms, network 280 ms)"
            ),
            (
                20_160,
                0,
                840.0,
                "device",
                "device: 2 frames dropped (120 ms), decode queue full"
            ),
        ]
    );
    assert_eq!((marks[2].at_ms, marks[2].duration_ms), (1790.0, 120.0));
}

#[test]
fn short_gaps_are_labelled_in_tenths_of_a_ms() {
    let (mut trace, anchors) = trace();
    trace.gaps = vec![gap(1419.6, 1420.0, 0.4, GapCause::Server)];
    let marks = gap_marks(&trace, &anchors, RATE, 21_600);
    assert_eq!(marks[0].label, "server: 0.4 ms gap (server 0.4 ms, network 0 ms)");
    assert_eq!((marks[0].sample, marks[0].samples), (10_070, 10));
}

#[test]
fn a_drop_after_the_last_heard_frame_is_marked_at_the_end() {
    let (mut trace, anchors) = trace();
    trace.entries.truncate(6);
    trace.gaps.clear();
    let marks = gap_marks(&trace, &anchors, RATE, 20_160);
    assert_eq!(marks.len(), 1);
    assert_eq!((marks[0].sample, marks[0].cause), (20_160, "device"));
}

/// (id, body) of each chunk after the RIFF header.
fn chunks(bytes: &[u8]) -> Vec<([u8; 4], Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let id: [u8; 4] = bytes[at..at + 4].try_into().unwrap();
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        out.push((id, bytes[at + 8..at + 8 + len].to_vec()));
        at += 8 + len + len % 2;
    }
    out
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

#[test]
fn cues_appended_to_a_hound_wav_keep_it_readable_and_name_each_gap() {
    let (trace, anchors) = trace();
    let marks = gap_marks(&trace, &anchors, RATE, 21_600);
    let dir = std::env::temp_dir().join(format!("xiaozhi-record-cues-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("t.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&path, spec).unwrap();
    for i in 0..21_600u32 {
        w.write_sample((i % 100) as i16).unwrap();
    }
    w.finalize().unwrap();
    append_cues(&path, &marks).unwrap();

    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(
        u32_at(&bytes, 4) as usize,
        bytes.len() - 8,
        "RIFF size covers the new chunks"
    );
    let read: Vec<i16> = hound::WavReader::open(&path)
        .unwrap()
        .samples::<i16>()
        .map(Result::unwrap)
        .collect();
    assert_eq!(read.len(), 21_600);
    assert_eq!(read[150], 50);

    let all = chunks(&bytes);
    let (_, cue) = all.iter().find(|c| &c.0 == b"cue ").expect("a cue chunk");
    assert_eq!(u32_at(cue, 0), 3);
    let positions: Vec<(u32, u32, &[u8])> = (0..3)
        .map(|i| {
            (
                u32_at(cue, 4 + 24 * i),
                u32_at(cue, 8 + 24 * i),
                &cue[12 + 24 * i..16 + 24 * i],
            )
        })
        .collect();
    assert_eq!(
        positions,
        vec![
            (1, 2880, &b"data"[..]),
            (2, 11_520, &b"data"[..]),
            (3, 20_160, &b"data"[..])
        ]
    );
    assert_eq!(u32_at(cue, 4 + 20), 2880, "sample offset");
    let (_, list) = all.iter().find(|c| &c.0 == b"LIST").expect("a LIST chunk");
    assert_eq!(&list[..4], b"adtl");
    let sub = chunks(&[&[0u8; 8][..], &list[..]].concat());
    let labels: Vec<(u32, String)> = sub
        .iter()
        .filter(|c| &c.0 == b"labl")
        .map(|c| {
            (
                u32_at(&c.1, 0),
                String::from_utf8(c.1[4..c.1.len() - 1].to_vec()).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        labels[0],
        (1, "server: 300 ms gap (server 250 ms, network 50 ms)".into())
    );
    assert_eq!(labels[2].0, 3);
    let regions: Vec<(u32, u32)> = sub
        .iter()
        .filter(|c| &c.0 == b"ltxt")
        .map(|c| (u32_at(&c.1, 0), u32_at(&c.1, 4)))
        .collect();
    assert_eq!(regions, vec![(1, 7200), (2, 7200), (3, 0)]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn audacity_labels_give_each_mark_its_span_in_seconds() {
    let (trace, anchors) = trace();
    let marks = gap_marks(&trace, &anchors, RATE, 21_600);
    assert_eq!(
        audacity_labels(&marks, RATE),
        "0.120000\t0.420000\tserver: 300 ms gap (server 250 ms, network 50 ms)\n\
         0.480000\t0.780000\tnetwork: 300 ms gap (server 20 ms, network 280 ms)\n\
         0.840000\t0.840000\tdevice: 2 frames dropped (120 ms), decode queue full\n"
    );
}
