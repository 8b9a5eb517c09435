//! Property tests: thousands of random inputs to every duration, rate, size
//! and distribution parser, and random fleet files, must never panic; and
//! whatever is accepted must be usable (sampled, added to an `Instant`,
//! multiplied, described) without panicking either.

use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::time::Duration;
use tokio::time::Instant;
use xiaozhi_fleet::config::plan::{Overrides, parse_record_rule};
use xiaozhi_fleet::config::{FleetFile, Load, Plan, Stop, parse_stage};
use xiaozhi_fleet::dist::Dist;
use xiaozhi_fleet::fleet::arrivals::ArrivalClock;
use xiaozhi_fleet::units::{
    MAX_DURATION, MAX_RATE, format_duration, parse_duration, parse_rate, parse_size_mb, secs_capped,
};

/// Numbers as people (and fuzzers) write them: plain, huge, tiny, negative,
/// exponents far out of range, and the special words.
fn number() -> BoxedStrategy<String> {
    prop_oneof![
        any::<f64>().prop_map(|f| f.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        (-20i32..20, -400i32..400).prop_map(|(m, e)| format!("{m}e{e}")),
        (0u32..100_000).prop_map(|n| format!("{}.{}", n / 1000, n % 1000)),
        prop::sample::select(vec![
            "0", "-0", ".5", "5.", "inf", "-inf", "NaN", "1e308", "1e-300", "", " 1 "
        ])
        .prop_map(str::to_string),
    ]
    .boxed()
}

fn unit() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "", "s", "ms", "m", "min", "h", "d", "days", "weeks", "years", "us", "ns", "sec", "x", " s",
    ])
}

fn duration_text() -> BoxedStrategy<String> {
    prop_oneof![
        4 => (number(), unit()).prop_map(|(n, u)| format!("{n}{u}")),
        1 => ((0u64..1_000_000), unit(), (0u64..100), unit()).prop_map(|(a, u, b, v)| format!("{a}{u}{b}{v}")),
        1 => ".{0,12}",
    ]
    .boxed()
}

fn dist_text() -> BoxedStrategy<String> {
    prop_oneof![
        duration_text(),
        (duration_text(), duration_text()).prop_map(|(a, b)| format!("uniform({a}, {b})")),
        duration_text().prop_map(|m| format!("exp({m})")),
        (duration_text(), number()).prop_map(|(m, s)| format!("lognormal({m}, {s})")),
        "[a-z]{0,9}\\([^)]{0,12}\\)?",
    ]
    .boxed()
}

fn rate_text() -> BoxedStrategy<String> {
    let per = prop::sample::select(vec!["", "/s", "/min", "/h", "/m", "/sec", "/day", "/"]);
    prop_oneof![4 => (number(), per).prop_map(|(n, p)| format!("{n}{p}")), 1 => ".{0,10}"].boxed()
}

/// Uses a duration the way the tool does: deadlines, sums, frame counts.
fn use_duration(d: Duration) {
    assert!(d <= MAX_DURATION, "{d:?} above the cap");
    let now = Instant::now();
    let _ = now + d + d + d;
    let _ = d.mul_f64(1.3);
    let _ = Duration::from_millis(60) * (d.as_millis() / 60).min(u128::from(u32::MAX)) as u32;
    let _ = format_duration(d);
}

fn use_dist(dist: &Dist, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for _ in 0..50 {
        use_duration(dist.sample(&mut rng));
    }
    use_duration(dist.mean());
    assert!(Dist::parse(&dist.to_string()).is_ok(), "{dist} does not parse back");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn durations_never_panic_and_accepted_ones_are_usable(text in duration_text()) {
        if let Ok(d) = parse_duration(&text) {
            use_duration(d);
        }
    }

    #[test]
    fn distributions_never_panic_and_accepted_ones_sample(text in dist_text(), seed in any::<u64>()) {
        if let Ok(dist) = Dist::parse(&text) {
            use_dist(&dist, seed);
        }
    }

    #[test]
    fn rates_never_panic_and_accepted_ones_drive_the_arrival_clock(text in rate_text(), seed in any::<u64>()) {
        if let Ok(per_sec) = parse_rate(&text) {
            prop_assert!(per_sec.is_finite() && (0.0..=MAX_RATE).contains(&per_sec), "{per_sec}");
            if per_sec > 0.0 {
                let mut clock = ArrivalClock::new(per_sec, seed);
                for _ in 0..50 {
                    use_duration(clock.next_gap());
                }
                use_duration(secs_capped(1.0 / per_sec));
            }
        }
    }

    #[test]
    fn sizes_never_panic_and_accepted_ones_are_positive(n in number(), u in prop::sample::select(vec!["", "M", "G", "GB", "GiB", "T", "k", "X", " G"])) {
        if let Ok(mb) = parse_size_mb(&format!("{n}{u}")) {
            prop_assert!(mb.is_finite() && mb > 0.0, "{mb}");
            let _ = (mb * 1024.0 * 1024.0) as u64;
        }
    }

    #[test]
    fn stages_and_record_rules_never_panic(n in number(), d in duration_text(), rule in ".{0,16}") {
        if let Ok((speakers, duration)) = parse_stage(&format!("{n} for {d}")) {
            prop_assert!(speakers > 0);
            use_duration(duration);
        }
        let _ = parse_record_rule(&rule);
        let _ = parse_record_rule(&format!("worst={n}"));
    }
}

/// A TOML integer: mostly small, sometimes anything.
fn int() -> BoxedStrategy<String> {
    prop_oneof![
        16 => (0u64..40).prop_map(|n| n.to_string()),
        1 => any::<u32>().prop_map(|n| n.to_string()),
        1 => any::<i64>().prop_map(|n| n.to_string()),
    ]
    .boxed()
}

/// A TOML float: mostly ordinary, sometimes at the edges or beyond.
fn float() -> BoxedStrategy<String> {
    prop_oneof![
        12 => (0.001f64..60.0).prop_map(|f| format!("{f:?}")),
        2 => prop::sample::select(vec!["0.001", "1000000.0", "1e-300", "1e300", "0.0", "-1.0", "nan", "+inf"]).prop_map(str::to_string),
        1 => any::<f64>().prop_map(|f| if f.is_nan() { "nan".to_string() } else if f.is_infinite() { format!("{}inf", if f < 0.0 { "-" } else { "+" }) } else { format!("{f:?}") }),
    ]
    .boxed()
}

/// A TOML string holding `text` (quoted and escaped).
fn quoted(text: String) -> String {
    toml::Value::String(text).to_string()
}

/// Any accepted duration, short ones most often.
fn valid_duration() -> BoxedStrategy<String> {
    let max_ms = MAX_DURATION.as_millis() as u64;
    prop_oneof![
        4 => (0u64..120_000).prop_map(|n| format!("{n}ms")),
        1 => (0u64..=max_ms).prop_map(|n| format!("{n}ms")),
        1 => Just(format!("{}s", MAX_DURATION.as_secs())),
    ]
    .boxed()
}

/// A duration value: mostly accepted, sometimes anything.
fn dur() -> BoxedStrategy<String> {
    prop_oneof![12 => valid_duration(), 1 => duration_text()]
        .prop_map(quoted)
        .boxed()
}

/// A distribution value: mostly accepted forms across their whole range.
fn dist() -> BoxedStrategy<String> {
    let valid = prop_oneof![
        valid_duration(),
        (0u64..100_000, 0u64..100_000).prop_map(|(a, b)| format!("uniform({}ms, {}ms)", a.min(b), a.max(b))),
        valid_duration().prop_map(|m| format!("exp({m})")),
        (0u64..100_000, 0.0f64..=3.0).prop_map(|(m, s)| format!("lognormal({m}ms, {s})")),
        (0.0f64..=3.0).prop_map(|s| format!("lognormal(1days, {s})")),
    ];
    prop_oneof![12 => valid, 1 => dist_text()].prop_map(quoted).boxed()
}

/// A fleet file with random values for every number, duration, rate and
/// distribution key (and a mock, a device, groups and tiers).
fn fleet_text() -> BoxedStrategy<String> {
    let top = (float(), int(), dur(), dist(), dur(), dur(), int()).boxed();
    let load: BoxedStrategy<String> = prop_oneof![
        Just(String::new()),
        rate_text().prop_map(|r| format!("arrivals = {}\n", quoted(r))),
        (0.0001f64..1000.0).prop_map(|r| format!("arrivals = \"{r}/s\"\n")),
        (int(), duration_text()).prop_map(|(n, d)| format!("stages = [{}]\n", quoted(format!("{n} for {d}")))),
        (int(), dur()).prop_map(|(n, d)| format!("[[stages]]\nspeakers = {n}\nduration = {d}\n")),
        int().prop_map(|n| format!("speakers = {n}\n")),
    ]
    .boxed();
    let groups: BoxedStrategy<String> = prop_oneof![
        Just(String::new()),
        (int(), prop_oneof![3 => (0.01f64..0.99).prop_map(Some), 1 => Just(None)], float(), dist(), float()).prop_map(
            |(c, w, v, idle, barge)| {
                // Mostly weights that add up to 1, sometimes any second weight.
                let (w, v) = match w {
                    Some(w) => (format!("{w:?}"), format!("{:?}", 1.0 - w)),
                    None => ("0.5".to_string(), v),
                };
                format!(
                    "[[group]]\ncount = {c}\nturns = 0\n\n[[group]]\nweight = {w}\nconversations = 2\nidle_time = {idle}\nbarge_in = {barge}\n\n[[group]]\nweight = {v}\n"
                )
            }
        ),
    ]
    .boxed();
    let mock = (dist(), int(), dur(), int(), float()).boxed();
    (top, load, groups, mock)
        .prop_map(
            |((ramp, devices, duration, think, hello, grace, total), load, groups, (sd, workers, idle, queue, cores))| {
                format!(
                    "ramp = {ramp}\ndevices = {devices}\nduration = {duration}\nthink_time = {think}\nhello_timeout = {hello}\ngrace = {grace}\ntotal_turns = {total}\n{load}\n[device]\nqueue_frames = {queue}\n\n[mock]\nsentence_delay = {sd}\nllm_workers = {workers}\nidle_timeout = {idle}\n\n[[tier]]\nname = \"t\"\ncores = {cores}\nmemory_gb = 8\n\n{groups}"
                )
            },
        )
        .boxed()
}

/// Uses an accepted plan the way a run does, short of connecting.
fn use_plan(plan: &Plan) {
    let now = Instant::now();
    let ramp = secs_capped(f64::from(plan.devices) / plan.ramp_per_sec);
    let t = plan.timeouts;
    let _ = now + ramp + t.hello + t.no_reply + t.reply + t.grace;
    if let Stop::Duration(d) = plan.stop {
        use_duration(d);
        let _ = now + d + t.grace;
    }
    match &plan.load {
        Load::Stages(stages) => use_duration(secs_capped(stages.iter().map(|s| s.duration.as_secs_f64()).sum())),
        Load::Arrivals { per_sec } => use_duration(ArrivalClock::new(*per_sec, plan.seed).next_gap()),
        Load::PerDevice => {}
    }
    for g in &plan.groups {
        use_dist(&g.think_time, plan.seed);
        use_dist(&g.idle_time, plan.seed);
        assert!((0.0..=1.0).contains(&g.barge_in));
    }
    use_dist(&plan.mock.sentence_delay, plan.seed);
    let _ = xiaozhi_fleet::app::describe_plan(plan);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn random_fleet_files_never_panic_and_accepted_plans_are_usable(text in fleet_text()) {
        let Ok(raw) = FleetFile::parse(&text, "random.toml") else { return Ok(()) };
        if let Ok(plan) = Plan::from_file(raw, "random.toml", &Overrides::default()) {
            use_plan(&plan);
        }
    }
}
