//! Integration tests, in one binary (fastest to link): the fleet against
//! the in-process mock on a paused clock, and the real binary's CLI.

mod cdp;
mod cli;
mod latency;
mod load;
mod outputs;
mod playback;
mod record;
mod report;
mod support;
mod tools;
