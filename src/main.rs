//! The `xiaozhi-fleet` binary: parse the command line, build the runtime,
//! call the library, map the result to an exit code (0 done, 2 error,
//! 130 interrupted).

mod cli;

use clap::Parser;
use cli::{Cli, Command, MockArgs, RunArgs};
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;
use xiaozhi_fleet::app::{self, RunOptions};
use xiaozhi_fleet::config::{FleetFile, Plan, plan::Overrides};

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
    };
    let plan = Plan::load(args.fleet.as_deref(), &ov)?;
    let opts = RunOptions {
        reports: args.report,
        quiet: args.quiet,
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
