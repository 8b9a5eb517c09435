//! The AI provider stand-ins, driven by real clients over loopback: the
//! async-openai crate for chat (streaming and not), speech and
//! transcription, reqwest for `/stats` and bad input, and a tokio-tungstenite
//! client running the FunASR exchange as the xiaozhi server's `fun_server`
//! provider does. Timing on a paused clock, so delays are exact.
//!
//! A test binary of its own: the timing assertions are exact, and other
//! tests loading the cores at the same time could shift loopback delivery
//! against the paused clock's auto-advance.

mod endpoints;
mod support;
mod wiring;
