//! Integration tests, in one binary (fastest to link): the fleet against
//! the in-process mock on a paused clock, and the real binary's CLI.

mod activation;
mod cdp;
mod cli;
mod console;
mod diagnose;
mod faults;
mod gateway;
mod latency;
mod load;
mod mock_server;
mod mqtt;
mod mqtt_faults;
mod mqtt_mock;
mod network_mqtt;
mod network_stutter;
mod ota;
mod ota_faults;
mod ota_https;
mod outputs;
mod playback;
mod props;
mod record;
mod report;
mod shard;
mod slow_tts;
mod speech_pause;
mod structure;
mod stutter_cause;
mod support;
mod tools;
mod until_end;
