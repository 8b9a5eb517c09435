//! Integration tests, in one binary (fastest to link): the fleet against
//! the in-process mock on a paused clock, and the real binary's CLI.

mod capacity;
mod cli;
mod latency;
mod load;
mod playback;
mod record;
mod server;
mod support;
