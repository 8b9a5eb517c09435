//! The rig: everything a run needs around the fleet, assembled in one place.
//! [`Rig::start`] brings up the server end (the URL given, the built-in mock
//! in-process, or the mock as a child process whose CPU is its own), the AI
//! provider stand-ins, the watcher of the server under test, and the live
//! outputs (streamed CSV, Prometheus `/metrics`, web dashboard);
//! [`Rig::run`] runs one fleet against it (once for `run`, once per stage for
//! `capacity`) with the live outputs seeing every run; [`Rig::finish`] stops
//! it all and hands back what the watcher and the stand-ins saw.
//!
//! The live outputs live across fleet runs: each run's snapshots are
//! forwarded into one feed, and a capacity search publishes its stage and
//! each finished stage (the knee curve so far) through [`Rig::set_step`]
//! and [`Rig::stage_finished`].

mod child;
mod stand_ins;

pub use child::{ChildSettings, MOCK_CHILD_NICE, spawn_mock_child};
pub use stand_ins::{announce_stand_ins, start_stand_ins};

use crate::audio::ClipSet;
use crate::config::{Plan, Target};
use crate::fleet::{Hooks, RunOutcome, load_clips, run_fleet_observed};
use crate::metrics::Snapshot;
use crate::mock::{MockOptions, MockServer};
use crate::providers::{ProvidersReport, ProvidersServer};
use crate::report::feed::{StageInfo, StagePoint};
use crate::report::outputs::{LiveAddresses, OutputOptions, RunOutputs, SharedWatch};
use crate::report::timeline::LatencyPoint;
use crate::watch::WatchTarget;
use crate::watch::series::{ServerReport, ServerWatch, WatchOptions};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Where the built-in mock runs when the plan has no URL.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MockPlacement {
    /// In this process (`run`: cheapest, and tests can count its sessions).
    #[default]
    InProcess,
    /// A child process, watched by pid (`capacity`: its CPU is its own and
    /// can be limited).
    Child,
}

/// What to assemble besides the server end.
#[derive(Clone, Debug, Default)]
pub struct RigOptions {
    pub mock: MockPlacement,
    /// The server to watch (with a mock child and no target: the child).
    pub watch: WatchOptions,
    /// Streamed CSV reports, `--prometheus`, `--dashboard`, the SLOs shown live.
    pub outputs: OutputOptions,
    /// A live progress line on stderr during each fleet run.
    pub progress: bool,
}

/// The server end of a run.
enum ServerEnd {
    Url,
    InProcess(MockServer),
    Child(tokio::process::Child),
}

/// A running rig (see the module docs).
pub struct Rig {
    /// The server's WebSocket URL.
    pub url: String,
    server: ServerEnd,
    clips: Arc<ClipSet>,
    stand_ins: Option<ProvidersServer>,
    watch: SharedWatch,
    watch_opts: WatchOptions,
    outputs: RunOutputs,
    /// The live outputs' feed: every fleet run's snapshots go here.
    feed: watch::Sender<Snapshot>,
    progress: bool,
    /// Fleet runs so far (the first takes the streamed CSV's sinks).
    runs: u32,
    /// When the rig started: later runs' snapshots count from here, so the
    /// live chart's time goes on across stages.
    started_at: tokio::time::Instant,
}

/// What the rig saw, at its end.
#[derive(Debug, Default)]
pub struct RigEnd {
    /// The watched server over the whole rig (if watched and not taken).
    pub server: Option<ServerReport>,
    /// The stand-ins' figures (if they ran).
    pub providers: Option<ProvidersReport>,
    /// The first run's latency series (for `run`'s report).
    pub latency_series: Vec<LatencyPoint>,
}

impl Rig {
    /// Assembles everything the plan and options ask for (see the module
    /// docs); every output is opened before the first device connects.
    pub async fn start(plan: &Plan, mut opts: RigOptions) -> anyhow::Result<Rig> {
        let clips = load_clips(plan)?;
        let (server, url) = match &plan.target {
            Target::Url(u) => (ServerEnd::Url, u.clone()),
            // Each device's URL comes from its OTA answer: the OTA URL
            // names the server in the console and the report.
            Target::OtaAnswer => (ServerEnd::Url, plan.ota.clone().unwrap_or_default()),
            Target::BuiltInMock => start_mock(plan, &clips, opts.mock).await?,
        };
        if let ServerEnd::Child(child) = &server
            && opts.watch.targets.is_empty()
            && let Some(pid) = child.id()
        {
            opts.watch.targets.push(WatchTarget::Pid(pid));
        }
        let stand_ins = start_stand_ins(plan).await?;
        let watch: SharedWatch = Arc::default();
        let (feed, feed_rx) = watch::channel(Snapshot::default());
        let outputs = RunOutputs::start(&opts.outputs, feed_rx, watch.clone()).await?;
        print_live_addresses(&outputs.addresses);
        Ok(Rig {
            url,
            server,
            clips,
            stand_ins,
            watch,
            watch_opts: opts.watch,
            outputs,
            feed,
            progress: opts.progress,
            runs: 0,
            started_at: tokio::time::Instant::now(),
        })
    }

    /// A rig around a server already running at `url`, with nothing else
    /// assembled (no stand-ins, watch or live outputs): for library callers
    /// and tests that start their own server.
    pub async fn at_url(plan: &Plan, url: &str) -> anyhow::Result<Rig> {
        let mut p = plan.clone();
        p.target = Target::Url(url.to_string());
        p.providers.listen = None;
        p.providers.llm_delay_sweep.clear();
        Rig::start(&p, RigOptions::default()).await
    }

    /// Whether the server is the built-in mock.
    pub fn is_mock(&self) -> bool {
        !matches!(self.server, ServerEnd::Url)
    }

    /// Where the live outputs listen.
    pub fn live_addresses(&self) -> &LiveAddresses {
        &self.outputs.addresses
    }

    /// The stand-ins, if they run (`capacity --llm-delay` re-tunes them).
    pub fn stand_ins(&self) -> Option<&ProvidersServer> {
        self.stand_ins.as_ref()
    }

    /// The watch options the rig was given (a mock child's pid added).
    pub fn watch_options(&self) -> &WatchOptions {
        &self.watch_opts
    }

    /// Starts watching the server with `opts` (t_s = 0 is now), replacing a
    /// watch already running; a no-op without targets.
    pub fn begin_watch(&mut self, opts: WatchOptions) {
        if opts.targets.is_empty() {
            return;
        }
        *lock(&self.watch) = Some(ServerWatch::start(opts));
    }

    /// Whatever the running watch saw so far, through `f`.
    pub fn watched<R>(&self, f: impl FnOnce(&ServerReport) -> R) -> Option<R> {
        lock(&self.watch).as_mut().map(|w| f(w.drain()))
    }

    /// Stops the running watch and returns everything it saw.
    pub async fn end_watch(&mut self) -> Option<ServerReport> {
        let w = lock(&self.watch).take();
        match w {
            Some(w) => Some(w.finish().await),
            None => None,
        }
    }

    /// Publishes the step in progress (a capacity stage) to the live outputs.
    pub fn set_step(&self, step: Option<StageInfo>) {
        self.outputs.set_step(step);
    }

    /// Publishes a finished capacity stage (a point of the knee curve).
    pub fn stage_finished(&self, point: StagePoint) {
        self.outputs.stage_finished(point);
    }

    /// Runs `plan`'s fleet against the rig's server until it ends or
    /// `interrupt`; the live outputs see its snapshots.
    pub async fn run(&mut self, plan: &Plan, interrupt: CancellationToken) -> anyhow::Result<RunOutcome> {
        self.run_with(plan, interrupt, Hooks::default()).await
    }

    /// [`Rig::run`] with test hooks.
    pub async fn run_with(
        &mut self,
        plan: &Plan,
        interrupt: CancellationToken,
        hooks: Hooks,
    ) -> anyhow::Result<RunOutcome> {
        let observers = self.outputs.observers(self.runs == 0);
        let offset = if self.runs == 0 {
            Duration::ZERO
        } else {
            self.started_at.elapsed()
        };
        self.runs += 1;
        let (tx, rx) = watch::channel(Snapshot::default());
        let progress = self
            .progress
            .then(|| tokio::spawn(crate::report::live::show_progress(rx.clone(), expected_length(plan))));
        let forward = tokio::spawn(forward(rx, self.feed.clone(), offset));
        let outcome = run_fleet_observed(plan, &self.url, &self.clips, interrupt, tx, hooks, observers).await;
        if let Some(p) = progress {
            let _ = p.await;
        }
        let _ = forward.await;
        Ok(outcome?)
    }

    /// Stops the server end, the stand-ins and the watch, and puts the live
    /// outputs' last word out: `interrupted` or `finished`, and whether the
    /// generator kept pace.
    pub async fn finish(mut self, interrupted: bool, generator_valid: Option<bool>) -> RigEnd {
        let latency_series = self.outputs.finish().await;
        let server = self.end_watch().await;
        match self.server {
            ServerEnd::Url => {}
            ServerEnd::InProcess(s) => s.stop().await,
            ServerEnd::Child(c) => child::stop_child(c).await,
        }
        let providers = match self.stand_ins {
            Some(s) => {
                let r = s.report();
                s.stop().await;
                Some(r)
            }
            None => None,
        };
        self.outputs.close(interrupted, generator_valid).await;
        RigEnd {
            server,
            providers,
            latency_series,
        }
    }
}

/// Starts the built-in mock where asked, with the plan's resolved settings.
async fn start_mock(plan: &Plan, clips: &Arc<ClipSet>, at: MockPlacement) -> anyhow::Result<(ServerEnd, String)> {
    match at {
        MockPlacement::InProcess => {
            let opts = MockOptions {
                clips: Some(clips.clone()),
                ..MockOptions::default()
            };
            let server = MockServer::start_with("127.0.0.1:0", plan.mock.clone(), opts).await?;
            let url = server.url();
            eprintln!("No server URL given: using the built-in mock server at {url}");
            Ok((ServerEnd::InProcess(server), url))
        }
        MockPlacement::Child => {
            let exe = std::env::current_exe()
                .map_err(|e| anyhow::anyhow!("cannot find this program to start the mock server: {e}"))?;
            let (child, url) = spawn_mock_child(&exe, &child::ChildSettings::of(plan)).await?;
            eprintln!("No server URL given: started the built-in mock server as a child process at {url}");
            Ok((ServerEnd::Child(child), url))
        }
    }
}

/// Forwards one fleet run's snapshots into the rig's feed until the run
/// ends, their time counted from `offset`.
async fn forward(mut rx: watch::Receiver<Snapshot>, feed: watch::Sender<Snapshot>, offset: Duration) {
    while rx.changed().await.is_ok() {
        let mut snap = rx.borrow_and_update().clone();
        snap.elapsed += offset;
        let _ = feed.send(snap);
    }
}

fn lock(w: &SharedWatch) -> std::sync::MutexGuard<'_, Option<ServerWatch>> {
    w.lock().unwrap_or_else(|e| e.into_inner())
}

fn print_live_addresses(a: &LiveAddresses) {
    if let Some(addr) = a.prometheus {
        eprintln!("Prometheus metrics at http://{addr}/metrics");
    }
    if let Some(addr) = a.dashboard {
        eprintln!("Live dashboard at http://{addr}/");
    }
}

/// A fleet run's planned length, for the progress bar (unknown for
/// turn-based runs).
pub fn expected_length(plan: &Plan) -> Option<Duration> {
    use crate::config::{Load, Stop};
    let ramp = Duration::from_secs_f64(f64::from(plan.devices) / plan.ramp_per_sec.max(1e-9));
    match (&plan.load, plan.stop) {
        (Load::Stages(stages), _) if stages.len() == 1 => Some(stages[0].duration + ramp),
        (Load::Stages(stages), _) => Some(stages.iter().map(|s| s.duration).sum()),
        (_, Stop::Duration(d)) => Some(d),
        _ => None,
    }
}
