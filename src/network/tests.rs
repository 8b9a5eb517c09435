use super::*;

const FRAME: Duration = Duration::from_millis(60);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn with(f: impl FnOnce(&mut Conditions)) -> Conditions {
    let mut c = Conditions::perfect();
    f(&mut c);
    c
}

fn delivered(fate: Fate) -> (Instant, Held) {
    match fate {
        Fate::Deliver { at, held } => (at, held),
        Fate::Lost => panic!("lost"),
    }
}

#[test]
fn a_perfect_link_delivers_at_once() {
    let t0 = Instant::now();
    let mut d = Direction::new(Conditions::perfect(), Carrier::Tcp, 1, t0);
    for i in 0..10 {
        let (at, held) = delivered(d.send(t0 + FRAME * i, 200));
        assert_eq!((at, held), (t0 + FRAME * i, Held::default()));
    }
}

#[test]
fn latency_is_base_plus_seeded_jitter_with_the_stated_mean_and_spread() {
    let cond = with(|c| {
        c.base = ms(30);
        c.jitter = Dist::Exponential(ms(20));
    });
    let t0 = Instant::now();
    let run = |seed| {
        let mut d = Direction::new(cond.clone(), Carrier::Udp, seed, t0);
        (0..20_000u32)
            .map(|i| delivered(d.send(t0 + FRAME * i, 200)).1.latency.as_secs_f64() * 1000.0)
            .collect::<Vec<f64>>()
    };
    let a = run(7);
    assert_eq!(a, run(7), "same seed, same delays");
    assert_ne!(a, run(8));
    let n = a.len() as f64;
    let mean = a.iter().sum::<f64>() / n;
    let sd = (a.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
    let min = a.iter().copied().fold(f64::MAX, f64::min);
    // base 30 ms + exp(20 ms): mean 50 ms, standard deviation 20 ms, never below 30 ms.
    assert!((mean - 50.0).abs() < 0.6, "mean {mean}");
    assert!((sd - 20.0).abs() < 0.8, "sd {sd}");
    assert!(min >= 30.0, "min {min}");
}

#[test]
fn a_stall_holds_exactly_what_would_come_out_inside_it() {
    let t0 = Instant::now();
    let s = stall::Stalls::new(t0 + ms(100), ms(1000), ms(300));
    assert_eq!(s.frozen_until(t0 + ms(99)), None);
    assert_eq!(s.frozen_until(t0 + ms(100)), Some(t0 + ms(400)));
    assert_eq!(s.frozen_until(t0 + ms(399)), Some(t0 + ms(400)));
    assert_eq!(s.frozen_until(t0 + ms(400)), None);
    assert_eq!(s.frozen_until(t0 + ms(2250)), Some(t0 + ms(2400)));

    let cond = with(|c| c.stall = Some((ms(1000), ms(300))));
    let mut d = Direction::new(cond, Carrier::Tcp, 3, t0);
    let mut held_frames = 0;
    for i in 0..100u32 {
        let sent = t0 + FRAME * i;
        let (at, held) = delivered(d.send(sent, 200));
        if held.stalled > Duration::ZERO {
            held_frames += 1;
            // Held to the end of its freeze, and by nothing else.
            assert_eq!(held.total(), held.stalled);
            assert!(at > sent);
        } else {
            assert_eq!(at, sent);
        }
    }
    // 6 s of frames, a 300 ms freeze each second: 5 frames (300 / 60) per freeze.
    assert_eq!(held_frames, 30);
}

#[test]
fn tcp_loss_delays_the_lost_segment_by_its_timeout_and_everything_behind_it() {
    let cond = with(|c| {
        c.base = ms(10);
        c.loss = 0.05;
    });
    let t0 = Instant::now();
    let mut d = Direction::new(cond.clone(), Carrier::Tcp, 11, t0);
    let fates: Vec<(Instant, Held)> = (0..400u32).map(|i| delivered(d.send(t0 + FRAME * i, 200))).collect();
    let lost: Vec<usize> = (0..fates.len())
        .filter(|&i| fates[i].1.retransmit > Duration::ZERO)
        .collect();
    assert!(lost.len() >= 10, "{} losses", lost.len());
    for &i in &lost {
        let (at, held) = fates[i];
        // 200 ms, then 400 ms more if lost again…
        assert!(
            [200, 600, 1400].contains(&(held.retransmit.as_millis() as u64)),
            "{held:?}"
        );
        assert_eq!(held.latency, ms(10));
        assert!(at >= t0 + FRAME * i as u32 + ms(10) + held.retransmit);
        // The next frame (sent before it got through) comes out with it, not before.
        let Some(&next) = fates.get(i + 1) else { continue };
        assert!(next.0 >= at);
        assert!(next.1.head_of_line > Duration::ZERO || next.1.retransmit > Duration::ZERO);
    }
    // In order, and nothing but latency, loss and the queue behind a loss.
    assert!(fates.windows(2).all(|w| w[0].0 <= w[1].0));
    for (i, (at, held)) in fates.iter().enumerate() {
        assert_eq!(*at, t0 + FRAME * i as u32 + held.total());
    }

    // The same seed over UDP: the same messages are simply gone.
    let mut udp = Direction::new(cond, Carrier::Udp, 11, t0);
    let gone: Vec<usize> = (0..400u32)
        .filter(|&i| udp.send(t0 + FRAME * i, 200) == Fate::Lost)
        .map(|i| i as usize)
        .collect();
    assert_eq!(gone.first(), lost.first());
}

#[test]
fn a_bandwidth_cap_bounds_the_delivered_rate() {
    // 16 000 B/s (128 kbit/s) with a 2 000-byte burst; 500 bytes offered every 10 ms (50 000 B/s).
    let cond = with(|c| {
        c.rate = Some(16_000.0);
        c.burst = 2_000;
    });
    let t0 = Instant::now();
    let mut d = Direction::new(cond, Carrier::Tcp, 5, t0);
    let out: Vec<Instant> = (0..200u32).map(|i| delivered(d.send(t0 + ms(10) * i, 500)).0).collect();
    // The burst leaves on time, then one message per 500 / 16 000 s = 31.25 ms.
    assert_eq!(&out[..4], &[t0, t0 + ms(10), t0 + ms(20), t0 + ms(30)]);
    let spacing = out[150] - out[149];
    assert_eq!(spacing, Duration::from_micros(31_250));
    for (i, at) in out.iter().enumerate() {
        let elapsed = (*at - t0).as_secs_f64();
        let bytes = 500.0 * (i + 1) as f64;
        assert!(
            bytes <= 2_000.0 + 500.0 + 16_000.0 * elapsed + 1e-6,
            "{i}: {bytes} B by {elapsed}s"
        );
    }
    assert!((out[199] - t0).as_secs_f64() > 5.0);
}
