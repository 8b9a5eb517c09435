//! The `xiaozhi-fleet` binary: parse the command line, install the
//! diagnostics subscriber, build the runtime, call the library, map the
//! result to an exit code (the table in `cli/mod.rs`: 0 done, 1 SLO or
//! verdict failed or stutter diagnosed, 2 error, 130 interrupted).

mod cli;
#[cfg(test)]
mod doc_examples;

use clap::Parser;
use cli::{
    CapacityArgs, Cli, Command, DiagnoseArgs, MergeArgs, MockArgs, ProvidersArgs, ProvisionArgs, ReportArgs, RunArgs,
    TlsArgs, WatchArgs,
};
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;
use xiaozhi_fleet::app::{self, RunOptions};
use xiaozhi_fleet::capacity::run::CapacityOptions;
use xiaozhi_fleet::capacity::search::{Resolution, SearchConfig};
use xiaozhi_fleet::capacity::slo::Slo;
use xiaozhi_fleet::config::{FleetFile, Plan, plan::Overrides};
use xiaozhi_fleet::device::tls::TlsOptions;
use xiaozhi_fleet::watch::series::WatchOptions;
use xiaozhi_fleet::watch::{Allotment, WatchTarget};

const EXIT_SLO_FAILED: u8 = 1;
const EXIT_ERROR: u8 = 2;
const EXIT_INTERRUPTED: u8 = app::EXIT_INTERRUPTED as u8;

fn main() -> ExitCode {
    let cli = Cli::parse();
    app::logging::init(cli.verbose);
    xiaozhi_fleet::fleet::limits::raise_open_files();
    let runtime = match xiaozhi_fleet::fleet::limits::runtime(cli.threads.map(usize::from)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let result = runtime.block_on(dispatch(cli.command.unwrap_or(Command::Run(cli.run))));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// Ctrl-C, SIGTERM or SIGHUP cancels the token; the run still writes its reports.
fn interrupt_token() -> CancellationToken {
    app::interrupt_token()
}

async fn dispatch(cmd: Command) -> anyhow::Result<u8> {
    match cmd {
        Command::Run(args) => run(args).await,
        Command::MockServer(args) => mock_server(args).await,
        Command::Capacity(args) => capacity(args).await,
        Command::Providers(args) => providers(args).await,
        Command::Report(args) => rerender(args),
        Command::Merge(args) => merge(args),
        Command::Provision(args) => provision(args).await,
        Command::Diagnose(args) => diagnose(args).await,
        Command::Validate { fleet } => {
            let plan = Plan::load(Some(&fleet), &Overrides::default())?;
            print!("{}", app::describe_plan(&plan)?);
            app::print_warnings(&plan);
            Ok(0)
        }
    }
}

async fn run(args: RunArgs) -> anyhow::Result<u8> {
    // Before anything slow, so an early SIGTERM is not lost to the default action.
    let interrupt = interrupt_token();
    let ov = Overrides {
        url: args.url,
        ota: args.ota,
        devices: args.devices,
        duration: args.duration,
        turns: args.turns,
        seed: args.seed,
        speakers: args.speakers,
        record: args.record,
        record_dir: args.record_dir,
        tls: tls_options(&args.tls),
        shape: None,
    };
    let slos = run_slos(&args.slo, args.fleet.as_deref())?;
    let mut plan = Plan::load(args.fleet.as_deref(), &ov)?;
    if args.providers.is_some() {
        plan.providers.listen = args.providers;
    }
    if let Some(shard) = args.shard {
        plan.apply_shard(shard)
            .map_err(|e| anyhow::anyhow!("--shard {shard}: {e}"))?;
    }
    plan.source_addrs = args.source_addr;
    let opts = RunOptions {
        reports: args.report,
        quiet: args.quiet,
        watch: watch_options(&args.watch),
        slos,
        prometheus: args.prometheus,
        dashboard: args.dashboard,
    };
    xiaozhi_fleet::report::format::check_formats(&opts.reports)?;
    let result = app::run(&plan, &opts, interrupt).await?;
    for e in &result.output_errors {
        eprintln!("error: {e}");
    }
    let turns = &result.report.turns;
    if !result.output_errors.is_empty() {
        return Ok(EXIT_ERROR);
    }
    if result.report.run.interrupted {
        return Ok(EXIT_INTERRUPTED);
    }
    if result.nothing_connected {
        eprintln!("error: no device could connect to {}", result.report.run.target_url);
        return Ok(EXIT_ERROR);
    }
    if turns.started > 0 && turns.failed == turns.started {
        eprintln!(
            "error: every turn failed ({} of {}); see the failures above",
            turns.failed, turns.started
        );
        return Ok(EXIT_ERROR);
    }
    if result.report.slo.as_ref().is_some_and(|v| !v.passed) {
        return Ok(EXIT_SLO_FAILED);
    }
    Ok(0)
}

/// `--slo` rules, else the fleet file's `[[slo]]` (none: no gate).
fn run_slos(flags: &[String], fleet: Option<&std::path::Path>) -> anyhow::Result<Vec<Slo>> {
    if !flags.is_empty() {
        return Ok(flags.iter().map(|s| Slo::parse(s)).collect::<Result<_, _>>()?);
    }
    let Some(path) = fleet else { return Ok(Vec::new()) };
    Ok(FleetFile::read(path)?
        .slo
        .unwrap_or_default()
        .into_iter()
        .map(|s| s.rule)
        .collect())
}

/// `report IN.json --report OUT...`
fn rerender(args: ReportArgs) -> anyhow::Result<u8> {
    xiaozhi_fleet::report::format::check_formats(&args.report)?;
    let text = std::fs::read_to_string(&args.input)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", args.input.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: not a JSON report: {e}", args.input.display()))?;
    for path in &args.report {
        xiaozhi_fleet::report::format::write_value(&value, path)?;
        eprintln!("report written to {}", path.display());
    }
    Ok(0)
}

/// `merge A.json B.json ... -o ALL.json [--report ALL.html]`
fn merge(args: MergeArgs) -> anyhow::Result<u8> {
    use xiaozhi_fleet::report::merge::{Shard, merge};
    let mut outputs = vec![args.output.clone()];
    outputs.extend(args.report.iter().cloned());
    xiaozhi_fleet::report::format::check_formats(&outputs)?;
    let shards = args
        .inputs
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))?;
            let v =
                serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: not a JSON report: {e}", p.display()))?;
            Ok(Shard::new(&p.display().to_string(), v)?)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let merged = merge(&shards)?;
    for note in merged["merge_notes"].as_array().into_iter().flatten() {
        eprintln!("note: {}", note.as_str().unwrap_or_default());
    }
    for path in &outputs {
        xiaozhi_fleet::report::format::write_value(&merged, path)?;
        eprintln!("report written to {}", path.display());
    }
    Ok(0)
}

async fn mock_server(args: MockArgs) -> anyhow::Result<u8> {
    let mut opts = xiaozhi_fleet::mock::MockOptions::default();
    let cfg = match &args.config {
        Some(path) => {
            let file = FleetFile::read(path)?;
            Plan::from_file(file, &path.display().to_string(), &Overrides::default())?.mock
        }
        None if args.settings_stdin => {
            let settings = xiaozhi_fleet::rig::ChildSettings::read(std::io::stdin().lock())?;
            opts.clips = settings.clips()?;
            settings.mock
        }
        None => Default::default(),
    };
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        opts.tls = Some(xiaozhi_fleet::mock::tls::load(cert, key)?);
    }
    app::mock_server_with(&args.listen, cfg, opts, app::stop_token()).await?;
    Ok(0)
}

/// The environment variable `provision` reads the token from.
const TOKEN_ENV: &str = "XF_MANAGER_TOKEN";

async fn provision(args: ProvisionArgs) -> anyhow::Result<u8> {
    use xiaozhi_fleet::provision::Token;
    let token = match args.token {
        Some(t) => t,
        None => Token::new(std::env::var(TOKEN_ENV).unwrap_or_default()),
    };
    if token.is_empty() {
        anyhow::bail!("provision needs the admin API token: --token T or {TOKEN_ENV}=T");
    }
    let ov = Overrides {
        ota: args.ota,
        devices: args.devices,
        seed: args.seed,
        ..Overrides::default()
    };
    let plan = Plan::load(args.fleet.as_deref(), &ov)?;
    let opts = app::provision::options(
        &plan,
        app::provision::ProvisionArgs {
            manager_api: args.manager_api,
            token,
            agent: args.agent,
            by_code: args.by_code,
            concurrency: args.concurrency.into(),
        },
    );
    let summary = app::provision::run(&opts).await?;
    Ok(if summary.failed.is_empty() { 0 } else { EXIT_ERROR })
}

fn tls_options(t: &TlsArgs) -> TlsOptions {
    if t.insecure {
        eprintln!("warning: --insecure: the server's TLS certificate is not checked");
    }
    TlsOptions {
        ca_cert: t.ca_cert.clone(),
        insecure: t.insecure,
    }
}

async fn providers(args: ProvidersArgs) -> anyhow::Result<u8> {
    let cfg = match &args.config {
        Some(path) => {
            let file = FleetFile::read(path)?;
            Plan::from_file(file, &path.display().to_string(), &Overrides::default())?.providers
        }
        None => Default::default(),
    };
    app::stand_ins::serve(&args.listen, cfg, interrupt_token()).await?;
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
    xiaozhi_fleet::report::format::check_formats(&args.report)?;
    let ov = Overrides {
        url: args.url,
        ota: args.ota,
        tls: tls_options(&args.tls),
        shape: args.shape,
        ..Overrides::default()
    };
    let mut plan = Plan::load(args.fleet.as_deref(), &ov)?;
    if args.providers.is_some() {
        plan.providers.listen = args.providers;
    }
    if let Some(list) = &args.llm_delay {
        plan.providers.llm_delay_sweep = xiaozhi_fleet::providers::config::parse_delay_list(list)
            .map_err(|e| anyhow::anyhow!("--llm-delay: {e}"))?;
    }
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
        prometheus: args.prometheus,
        dashboard: args.dashboard,
    };
    app::capacity::capacity(&plan, opts, &args.report, interrupt_token()).await
}

/// `diagnose`: the matrix, the verdict; exit 1 when stutter was found.
async fn diagnose(args: DiagnoseArgs) -> anyhow::Result<u8> {
    use xiaozhi_fleet::app::diagnose::{DiagnoseOptions, diagnose};
    use xiaozhi_fleet::config::TransportChoice;
    use xiaozhi_fleet::diagnose::MatrixOptions;
    let interrupt = interrupt_token();
    let networks = args.networks.into_iter().filter(|n| n != "none").collect();
    let opts = DiagnoseOptions {
        fleet: args.fleet,
        overrides: Overrides {
            url: args.url,
            ota: args.ota,
            seed: args.seed,
            tls: tls_options(&args.tls),
            ..Overrides::default()
        },
        matrix: MatrixOptions {
            baseline_devices: args.baseline_devices,
            devices: args.devices,
            baseline_network: args.baseline_network,
            networks,
            transport: if args.transport == "mqtt" {
                TransportChoice::Mqtt
            } else {
                TransportChoice::Websocket
            },
            other_transport: args.other_transport,
            small_queue: (args.queue > 0).then_some(args.queue),
        },
        cell_duration: args.cell_duration,
        watch: watch_options(&args.watch),
        reports: args.report,
        quiet: args.quiet,
    };
    Ok(diagnose(&opts, interrupt).await?.exit_code())
}
