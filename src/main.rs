//! The `xiaozhi-fleet` binary: parse the command line, build the runtime,
//! call the library, map the result to an exit code (0 done, 2 error,
//! 130 interrupted).

mod cli;

use clap::Parser;
use cli::{CapacityArgs, Cli, Command, MockArgs, RunArgs, WatchArgs};
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;
use xiaozhi_fleet::app::{self, RunOptions};
use xiaozhi_fleet::capacity::run::CapacityOptions;
use xiaozhi_fleet::capacity::search::{Resolution, SearchConfig};
use xiaozhi_fleet::capacity::slo::Slo;
use xiaozhi_fleet::config::{FleetFile, Plan, plan::Overrides};
use xiaozhi_fleet::server::series::WatchOptions;
use xiaozhi_fleet::server::{Allotment, WatchTarget};

const EXIT_ERROR: u8 = 2;
const EXIT_INTERRUPTED: u8 = 130;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let result = runtime.block_on(dispatch(cli.command.unwrap_or(Command::Run(RunArgs::default()))));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// Ctrl-C cancels the token; the run still writes its report.
fn interrupt_token() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\ninterrupted: finishing the report (Ctrl-C again to abort)");
            t.cancel();
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(EXIT_INTERRUPTED as i32);
            }
        }
    });
    token
}

async fn dispatch(cmd: Command) -> anyhow::Result<u8> {
    match cmd {
        Command::Run(args) => run(args).await,
        Command::MockServer(args) => mock_server(args).await,
        Command::Capacity(args) => capacity(args).await,
        Command::Validate { fleet } => {
            let plan = Plan::load(Some(&fleet), &Overrides::default())?;
            print!("{}", app::describe_plan(&plan)?);
            Ok(0)
        }
    }
}

async fn run(args: RunArgs) -> anyhow::Result<u8> {
    let ov = Overrides {
        url: args.url,
        devices: args.devices,
        duration: args.duration,
        turns: args.turns,
        seed: args.seed,
        speakers: args.speakers,
        record: args.record,
        record_dir: args.record_dir,
        shape: None,
    };
    let plan = Plan::load(args.fleet.as_deref(), &ov)?;
    let opts = RunOptions {
        reports: args.report,
        quiet: args.quiet,
        watch: watch_options(&args.watch),
    };
    let interrupt = interrupt_token();
    let result = app::run(&plan, &opts, interrupt).await?;
    if result.report.run.interrupted {
        return Ok(EXIT_INTERRUPTED);
    }
    if result.nothing_connected {
        eprintln!("error: no device could connect to {}", result.report.run.target_url);
        return Ok(EXIT_ERROR);
    }
    Ok(0)
}

async fn mock_server(args: MockArgs) -> anyhow::Result<u8> {
    let cfg = match &args.config {
        Some(path) => {
            let file = FleetFile::read(path)?;
            Plan::from_file(file, &path.display().to_string(), &Overrides::default())?.mock
        }
        None => Default::default(),
    };
    app::mock_server(&args.listen, cfg, interrupt_token()).await?;
    Ok(0)
}

fn watch_options(w: &WatchArgs) -> WatchOptions {
    let mut targets: Vec<WatchTarget> = w.watch_pid.iter().map(|&p| WatchTarget::Pid(p)).collect();
    targets.extend(w.watch_cgroup.iter().cloned().map(WatchTarget::Cgroup));
    targets.extend(w.watch_docker.iter().cloned().map(WatchTarget::Docker));
    WatchOptions {
        targets,
        interval: w.watch_interval,
        allotment: Allotment {
            cpu_cores: w.server_cpus,
            memory_mb: w.server_memory,
        },
    }
}

async fn capacity(args: CapacityArgs) -> anyhow::Result<u8> {
    let ov = Overrides {
        url: args.url,
        shape: args.shape,
        ..Overrides::default()
    };
    let plan = Plan::load(args.fleet.as_deref(), &ov)?;
    let slos = if args.slo.is_empty() {
        plan.slos.clone()
    } else {
        args.slo.iter().map(|s| Slo::parse(s)).collect::<Result<Vec<_>, _>>()?
    };
    let opts = CapacityOptions {
        slos,
        search: SearchConfig {
            start: args.start,
            resolution: args.resolution.map_or(Resolution::Auto, Resolution::Fixed),
            max_speakers: args.max_speakers,
            descend: false,
        },
        stage_duration: args.stage_duration,
        target_speakers: args.target_speakers,
        tiers: plan.tiers.clone(),
        watch: watch_options(&args.watch),
        min_turns: args.min_turns,
        cpus: args.cpus,
        live: !args.quiet,
    };
    app::capacity::capacity(&plan, args.fleet.as_deref(), opts, &args.report, interrupt_token()).await
}
