//! Tests of writing recordings: WAV length and silence, decode rate,
//! undecodable frames, the timeline, file names.

use super::*;
use crate::record::trace::{Gap, TurnFailure};
use bytes::Bytes;
use opus_rs::{Application, OpusEncoder};
use std::f32::consts::TAU;

const FRAME: usize = 1440; // 60 ms at 24 kHz

/// `count` consecutive 60 ms Opus packets of a 440 Hz sine (or silence).
fn packets(count: usize, sine: bool) -> Vec<Bytes> {
    let mut encoder = OpusEncoder::new(24000, 1, Application::Voip).unwrap();
    let mut out = vec![0u8; 4000];
    let amplitude = if sine { 0.5 } else { 0.0 };
    let mut packet = |i: usize| {
        let wave = |n: usize| amplitude * (TAU * 440.0 * (i * FRAME + n) as f32 / 24000.0).sin();
        let len = encoder
            .encode(&(0..FRAME).map(wave).collect::<Vec<_>>(), FRAME, &mut out)
            .unwrap();
        Bytes::copy_from_slice(&out[..len])
    };
    (0..count).map(&mut packet).collect()
}

fn frame(at_ms: f64, packet: Bytes, fate: Fate, play_start_ms: Option<f64>) -> TraceEntry {
    TraceEntry {
        at_ms,
        queue_depth: 1,
        item: TraceItem::Frame {
            packet,
            fate,
            play_start_ms,
            duration_ms: 60.0,
        },
    }
}

fn text(at_ms: f64, text: &str) -> TraceEntry {
    TraceEntry {
        at_ms,
        queue_depth: 0,
        item: TraceItem::Text(text.into()),
    }
}

fn turn(sample_rate: u32, entries: Vec<TraceEntry>, gaps: Vec<Gap>) -> TurnTrace {
    TurnTrace {
        device: 3,
        device_id: "aa:bb:cc:00:11:22".into(),
        conversation: 1,
        turn: 4,
        failure: None,
        clip: "weather".into(),
        sample_rate,
        outcome: "ok".into(),
        underrun_ms: gaps.iter().map(|g| g.end_ms - g.start_ms).sum(),
        underruns: gaps.len() as u32,
        overflow_drops: 0,
        first_audio_ms: Some(812.25),
        turn_ms: Some(4321.0),
        entries,
        gaps,
    }
}

/// 10 accepted sine frames from 800 ms, with a 500 ms gap before the 6th.
fn gapped_turn(sample_rate: u32) -> TurnTrace {
    let entries = packets(10, true)
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let start = 800.0 + 60.0 * i as f64 + if i >= 5 { 500.0 } else { 0.0 };
            let fate = if i == 0 || i == 5 { Fate::Played } else { Fate::Queued };
            frame(start - 5.0, p, fate, Some(start))
        })
        .collect();
    turn(sample_rate, entries, vec![gap(1100.0, 1600.0, false)])
}

fn gap(start_ms: f64, end_ms: f64, between_sentences: bool) -> Gap {
    Gap {
        start_ms,
        end_ms,
        between_sentences,
        server_ms: end_ms - start_ms,
        network_ms: 0.0,
        cause: crate::record::trace::GapCause::Server,
    }
}

fn loud(samples: &[i16]) -> bool {
    samples.iter().filter(|s| s.unsigned_abs() > 500).count() > samples.len() / 4
}

#[test]
fn wav_length_is_frames_plus_gaps() {
    let samples = render_wav(&gapped_turn(24000)).unwrap();
    assert_eq!(samples.len(), 26_400);
    let gap = 5 * FRAME..5 * FRAME + 12_000;
    assert!(samples[gap.clone()].iter().all(|&s| s == 0));
    assert!(loud(&samples[gap.start - FRAME..gap.start]), "audio before the gap");
    assert!(loud(&samples[gap.end..gap.end + FRAME]), "audio after the gap");
}

#[test]
fn frame_without_start_follows_the_previous_one() {
    let mut trace = gapped_turn(24000);
    for entry in &mut trace.entries[1..5] {
        if let TraceItem::Frame { play_start_ms, .. } = &mut entry.item {
            *play_start_ms = None;
        }
    }
    assert_eq!(render_wav(&trace).unwrap(), render_wav(&gapped_turn(24000)).unwrap());
}

#[test]
fn dropped_and_ignored_frames_are_not_heard() {
    let sine = packets(4, true);
    let heard = |p: &Bytes, i: usize| frame(0.0, p.clone(), Fate::Queued, Some(60.0 * i as f64));
    let noise = packets(3, false);
    let mut entries = vec![frame(-10.0, noise[0].clone(), Fate::Ignored, None), heard(&sine[0], 0)];
    entries.push(text(1.0, r#"{"type":"tts","state":"sentence_start"}"#));
    entries.push(heard(&sine[1], 1));
    entries.push(frame(2.0, noise[1].clone(), Fate::Dropped, None));
    entries.push(frame(2.0, noise[2].clone(), Fate::Dropped, None));
    entries.extend([heard(&sine[2], 2), heard(&sine[3], 3)]);
    let with_extras = render_wav(&turn(24000, entries, vec![])).unwrap();

    let only_heard = (0..4).map(|i| heard(&sine[i], i)).collect();
    let expected = render_wav(&turn(24000, only_heard, vec![])).unwrap();
    assert_eq!(with_extras.len(), 4 * FRAME);
    assert_eq!(with_extras, expected);
}

#[test]
fn decodes_at_announced_rate() {
    let samples = render_wav(&gapped_turn(16000)).unwrap();
    // 10 frames of 960 samples plus 500 ms (8000 samples) of silence.
    assert_eq!(samples.len(), 10 * 960 + 8000);
    assert!(samples[5 * 960..5 * 960 + 8000].iter().all(|&s| s == 0));
    assert!(loud(&samples[4 * 960..5 * 960]));
}

#[test]
fn unsupported_rate_decodes_at_24k_and_says_so() {
    let trace = gapped_turn(22050);
    assert_eq!(render_wav(&trace).unwrap().len(), 26_400);
    let timeline = timeline_json(&trace);
    assert_eq!(timeline["sample_rate"], 22050);
    assert_eq!(timeline["wav_sample_rate"], 24000);
    assert!(timeline["note"].as_str().unwrap().contains("24000"));
    assert!(timeline_json(&gapped_turn(24000)).get("note").is_none());
}

#[test]
fn undecodable_frames_become_silence() {
    let sine = packets(2, true);
    let entries = vec![
        frame(0.0, sine[0].clone(), Fate::Played, Some(0.0)),
        frame(1.0, Bytes::from_static(&[0xff]), Fate::Queued, Some(60.0)),
        frame(2.0, sine[1].clone(), Fate::Queued, Some(120.0)),
    ];
    let rendered = render(&turn(24000, entries, vec![])).unwrap();
    assert_eq!(rendered.undecodable_frames, 1);
    assert_eq!(rendered.samples.len(), 3 * FRAME);
    assert!(rendered.samples[FRAME..2 * FRAME].iter().all(|&s| s == 0));
}

#[test]
fn timeline_lists_every_entry_and_span() {
    let mut trace = gapped_turn(24000);
    let silence = packets(1, false).remove(0);
    trace
        .entries
        .insert(0, text(-20.0, r#"{"type":"tts","state":"start"}"#));
    trace.entries.push(text(2000.123456, "not json"));
    trace.entries.push(frame(2001.0, silence, Fate::Dropped, None));
    trace.gaps.push(Gap {
        server_ms: 10.0,
        network_ms: 40.2496,
        cause: crate::record::trace::GapCause::Network,
        ..gap(1900.0004, 1950.25, true)
    });
    let timeline = timeline_json(&trace);

    let entries = timeline["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 13);
    assert_eq!(entries[0]["kind"], "text");
    assert_eq!(entries[0]["text"]["state"], "start");
    assert_eq!(entries[11]["text"], "not json");
    assert_eq!(entries[11]["at_ms"], 2000.123);
    let mut first = entries[1].clone();
    assert!(first["bytes"].take().as_u64().unwrap() > 0);
    let expected = json!({"at_ms": 795.0, "kind": "frame", "bytes": null, "fate": "played",
        "play_start_ms": 800.0, "duration_ms": 60.0, "queue_depth": 1});
    assert_eq!(first, expected);
    assert_eq!(entries[12]["fate"], "dropped");
    assert!(entries[12]["play_start_ms"].is_null());

    let spans = timeline["underrun_spans"].as_array().unwrap();
    assert_eq!(spans.len(), 2);
    assert_eq!(spans[0]["duration_ms"], 500.0);
    let expected = json!({"start_ms": 1900.0, "end_ms": 1950.25, "duration_ms": 50.25, "between_sentences": true,
        "cause": "network", "server_ms": 10.0, "network_ms": 40.25});
    assert_eq!(
        (&spans[0]["cause"], &spans[0]["server_ms"]),
        (&json!("server"), &json!(500.0))
    );
    assert_eq!(spans[1], expected);
    assert_eq!(timeline["wav"], "dev-aabbcc001122-conv01-turn04.wav");
    assert_eq!(timeline["conversation"], 1);
    assert_eq!(timeline["failed"], false);
    assert!(timeline["failure"].is_null());
    assert_eq!(timeline["device_id"], "aa:bb:cc:00:11:22");
    assert_eq!(timeline["first_audio_ms"], 812.25);
}

#[test]
fn failed_turn_timeline_says_why() {
    let mut trace = turn(24000, vec![text(10.0, r#"{"type":"stt","text":"hi"}"#)], vec![]);
    trace.outcome = "failed: no_reply".into();
    trace.failure = Some(TurnFailure {
        kind: "no_reply".into(),
        detail: Some("no tts start 15 s after end of speech".into()),
    });
    let timeline = timeline_json(&trace);
    assert_eq!(timeline["failed"], true);
    assert_eq!(timeline["failure"]["kind"], "no_reply");
    assert_eq!(timeline["failure"]["detail"], "no tts start 15 s after end of speech");
}

#[test]
fn conversations_of_one_device_get_their_own_files() {
    let root = std::env::temp_dir().join(format!("xiaozhi-record-conv-{}", std::process::id()));
    let mut written = std::collections::BTreeSet::new();
    for conversation in 0..2 {
        for t in 0..2 {
            let mut trace = gapped_turn(24000);
            trace.conversation = conversation;
            trace.turn = t;
            let r = write_recording(&root, &trace).unwrap();
            assert!(written.insert(r.wav));
        }
    }
    assert_eq!(
        fs::read_dir(&root).unwrap().count(),
        12,
        "4 WAVs, 4 timelines and 4 label tracks"
    );
    fs::remove_dir_all(&root).unwrap();
}

#[test]
fn write_recording_creates_both_files() {
    let root = std::env::temp_dir().join(format!("xiaozhi-record-test-{}", std::process::id()));
    let dir = root.join("nested");
    let trace = gapped_turn(24000);
    let recording = write_recording(&dir, &trace).unwrap();

    assert_eq!(recording.wav, dir.join("dev-aabbcc001122-conv01-turn04.wav"));
    assert_eq!(
        recording.timeline,
        dir.join("dev-aabbcc001122-conv01-turn04.timeline.json")
    );
    assert_eq!(recording.duration_ms, 1100.0);
    assert_eq!((recording.underruns, recording.underrun_ms), (1, 500.0));

    let reader = hound::WavReader::open(&recording.wav).unwrap();
    let spec = reader.spec();
    assert_eq!((spec.channels, spec.sample_rate, spec.bits_per_sample), (1, 24000, 16));
    let written: Vec<i16> = reader.into_samples().map(Result::unwrap).collect();
    assert_eq!(written, render_wav(&trace).unwrap());

    let timeline: Value = serde_json::from_slice(&fs::read(&recording.timeline).unwrap()).unwrap();
    assert_eq!(timeline["undecodable_frames"], 0);
    assert_eq!(timeline["entries"].as_array().unwrap().len(), 10);

    // The 500 ms gap after the 5th frame (300 ms into the WAV), marked with its cause.
    let label = "server: 500 ms gap (server 500 ms, network 0 ms)";
    assert_eq!(
        timeline["gap_marks"],
        json!([{"sample": 7200, "samples": 12000, "wav_ms": 300.0, "at_ms": 1100.0,
            "duration_ms": 500.0, "cause": "server", "label": label}])
    );
    assert!(
        written[7200..19_200].iter().all(|&s| s == 0),
        "the mark covers the silence"
    );
    assert!(written[7199] != 0 || written[19_200] != 0);
    let labels = recording.labels.as_ref().unwrap();
    assert_eq!(labels, &dir.join("dev-aabbcc001122-conv01-turn04.labels.txt"));
    assert_eq!(
        fs::read_to_string(labels).unwrap(),
        format!("0.300000\t0.800000\t{label}\n")
    );
    assert_eq!(recording.marks, BTreeMap::from([("server", 1)]));
    let bytes = fs::read(&recording.wav).unwrap();
    assert!(bytes.windows(4).any(|w| w == b"cue "), "the WAV carries cue points");

    fs::remove_dir_all(&root).unwrap();
}
