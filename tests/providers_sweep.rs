//! The stand-ins' LLM delay sweep in a test binary of its own: each
//! capacity stage's generator self-check reads this process's CPU, which
//! the other provider tests would add to if they ran in the same process.

// The shared helpers serve the `providers` binary too; not all are used here.
#![allow(dead_code)]

#[path = "providers/support.rs"]
mod support;
#[path = "providers/sweep.rs"]
mod sweep;
