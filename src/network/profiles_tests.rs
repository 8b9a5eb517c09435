use super::*;
use crate::network::{Carrier, Direction, Fate};
use tokio::time::Instant;

const FRAME: Duration = Duration::from_millis(60);
/// Frames per sample: 50 000 × 60 ms ≈ 50 minutes of audio.
const N: u32 = 50_000;

/// The mean and standard deviation of a jitter distribution, in ms, from its definition.
fn moments(d: &Dist) -> (f64, f64) {
    match *d {
        Dist::Fixed(x) => (x.as_secs_f64() * 1e3, 0.0),
        Dist::Uniform(a, b) => {
            let (a, b) = (a.as_secs_f64() * 1e3, b.as_secs_f64() * 1e3);
            ((a + b) / 2.0, (b - a) / 12f64.sqrt())
        }
        Dist::Exponential(m) => (m.as_secs_f64() * 1e3, m.as_secs_f64() * 1e3),
        Dist::LogNormal { median, sigma } => {
            let m = median.as_secs_f64() * 1e3;
            let s2 = sigma * sigma;
            (m * (s2 / 2.0).exp(), m * ((s2.exp() - 1.0) * s2.exp()).sqrt())
        }
    }
}

/// Latencies (ms) of the delivered frames and how many were lost, one 60 ms frame at a time over UDP.
fn sample(c: &Conditions, seed: u64) -> (Vec<f64>, u32) {
    let t0 = Instant::now();
    let mut d = Direction::new(c.clone(), Carrier::Udp, seed, t0);
    let mut lost = 0;
    let mut lat = Vec::with_capacity(N as usize);
    for i in 0..N {
        match d.send(t0 + FRAME * i, 200) {
            Fate::Deliver { held, .. } => lat.push(held.latency.as_secs_f64() * 1e3),
            Fate::Lost => lost += 1,
        }
    }
    (lat, lost)
}

#[test]
fn every_name_resolves_and_an_unknown_one_lists_the_choices() {
    for name in PROFILE_NAMES {
        let p = profile(name).unwrap_or_else(|| panic!("{name}"));
        assert_eq!(&p.name, name);
    }
    assert_eq!(resolve("lan"), Ok(None));
    assert_eq!(resolve("none"), Ok(None));
    assert_eq!(resolve("4g").unwrap().unwrap().name, "4g");
    assert_eq!(
        resolve("wifi-bad"),
        Err("must be lan, wifi-good, wifi-poor, 4g, edge-of-range or none; got `wifi-bad`".into())
    );
}

#[test]
fn each_profile_worsens_the_one_before() {
    let p: Vec<LinkConditions> = PROFILE_NAMES.iter().map(|n| profile(n).unwrap()).collect();
    assert!(p[0].is_perfect());
    let mean = |c: &Conditions| c.base + c.jitter.mean();
    // wifi-good < wifi-poor < edge-of-range in delay and loss; 4g sits between by loss.
    for (a, b) in [(1, 2), (2, 4)] {
        assert!(mean(&p[a].down) < mean(&p[b].down), "{} vs {}", p[a].name, p[b].name);
        assert!(p[a].down.loss < p[b].down.loss);
        assert!(p[a].down.rate > p[b].down.rate);
    }
    assert!(p[1].down.loss < p[3].down.loss && p[3].down.loss < p[2].down.loss);
}

#[test]
fn each_profiles_delays_have_the_stated_mean_and_spread_and_loss() {
    for name in &PROFILE_NAMES[1..] {
        let p = profile(name).unwrap();
        for c in [&p.down, &p.up] {
            let (lat, lost) = sample(c, 42);
            let n = lat.len() as f64;
            let mean = lat.iter().sum::<f64>() / n;
            let sd = (lat.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
            let min = lat.iter().copied().fold(f64::MAX, f64::min);
            let (jm, js) = moments(&c.jitter);
            let base = c.base.as_secs_f64() * 1e3;
            // Mean within 3% of base + the jitter's mean, spread within 15% of its deviation.
            assert!((mean - (base + jm)).abs() < 0.03 * (base + jm), "{name}: mean {mean}");
            assert!((sd - js).abs() < 0.15 * js, "{name}: sd {sd} vs {js}");
            assert!(min >= base, "{name}: min {min}");
            // Loss within 15% of the stated rate (a binomial over N frames).
            let rate = f64::from(lost) / f64::from(N);
            assert!(
                (rate - c.loss).abs() < 0.15 * c.loss,
                "{name}: loss {rate} vs {}",
                c.loss
            );
        }
    }
}

#[test]
fn the_same_seed_gives_the_same_delays_and_another_seed_others() {
    let p = profile("wifi-poor").unwrap();
    let a = sample(&p.down, 9);
    assert_eq!(a, sample(&p.down, 9));
    assert_ne!(a.0, sample(&p.down, 10).0);
}

#[test]
fn device_seeds_differ_by_device_and_connection_and_repeat() {
    let s = device_seed(1, 0, 0);
    assert_eq!(s, device_seed(1, 0, 0));
    let others = [
        device_seed(2, 0, 0),
        device_seed(1, 1, 0),
        device_seed(1, 0, 1),
        device_seed(1, 1, 1),
    ];
    for o in others {
        assert_ne!(s, o);
    }
}

#[test]
fn udp_jitter_reorders_while_tcp_keeps_order() {
    let p = profile("wifi-poor").unwrap();
    let t0 = Instant::now();
    let arrivals = |carrier| {
        let mut d = Direction::new(p.down.clone(), carrier, 3, t0);
        (0..2_000u32)
            .filter_map(|i| match d.send(t0 + Duration::from_millis(20) * i, 200) {
                Fate::Deliver { at, .. } => Some(at),
                Fate::Lost => None,
            })
            .collect::<Vec<Instant>>()
    };
    assert!(arrivals(Carrier::Tcp).windows(2).all(|w| w[0] <= w[1]));
    assert!(arrivals(Carrier::Udp).windows(2).any(|w| w[0] > w[1]));
}
