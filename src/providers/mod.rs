//! Stand-ins for the AI providers a real xiaozhi server calls (LLM, TTS,
//! ASR), so an operator can load the server's own modules without paying
//! for, or waiting on, cloud AI.

pub mod config;
pub mod gate;
pub mod matcher;
pub mod voice;
