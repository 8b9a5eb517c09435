//! Integration tests, in one binary (fastest to link): the fleet against
//! the in-process mock on a paused clock, and the real binary's CLI.

mod cli;
mod latency;
mod load;
mod mock_server;
mod playback;
mod props;
mod record;
mod shard;
mod support;
mod until_end;
