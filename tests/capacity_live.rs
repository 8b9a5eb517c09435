//! The capacity search's live outputs (Prometheus stage metrics, the
//! dashboard in headless Chromium), in a test binary of their own: each
//! stage's generator self-check reads this process's CPU, which the other
//! end-to-end tests would add to if they ran in the same process.

// The shared helpers serve the `it` binary too; not all are used here.
#![allow(dead_code)]

#[path = "it/capacity_live.rs"]
mod capacity_live;
#[path = "it/cdp.rs"]
mod cdp;
#[path = "it/support.rs"]
mod support;
#[path = "it/tools.rs"]
mod tools;
