//! Turn recordings: which turns a run keeps as recordings and how they are
//! written out.
//!
//! Devices capture a [`trace::TurnTrace`] per turn while recording is on.
//! The [`Recorder`] decides at once whether each offered trace is kept: the
//! `worst N` rule holds at most N traces in memory (the turns that stuttered
//! worst, then the slowest), and a device rule keeps every turn of one device.
//! At the end of the run [`write_recording`] turns each kept trace into a WAV
//! of what the device's speaker played (underruns as silence) and a JSON
//! timeline of everything the device received; each gap and skip is marked
//! with its cause on the timeline, as WAV cue points and as an Audacity
//! label track ([`marks`]).

pub mod marks;
mod select;
pub mod trace;
mod write;

pub use select::{RecordRule, Recorder};
pub use write::{RecordError, Recording, render_wav, timeline_json, write_recording};
