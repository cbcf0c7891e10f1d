//! The gateway's memory over a soak: VmRSS and VmHWM from /proc/PID/status, sampled on a
//! thread of its own, and whether the resident size stayed flat.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Runs shorter than this are not judged for growth: caches are still filling.
pub const MIN_JUDGED_RUN: Duration = Duration::from_secs(5 * 60);
/// Growth allowed after warm-up: SQLite's page cache (2 MiB per connection, the
/// gateway has three) legitimately fills as the database grows.
const ALLOWED_GROWTH_KIB: u64 = 8 * 1024;
/// ... or this share of the post-warm-up size, whichever is larger.
const ALLOWED_GROWTH_SHARE: f64 = 0.10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Since the sampler started.
    pub at: Duration,
    pub rss_kib: u64,
    /// The peak resident size so far (the kernel's high-water mark).
    pub hwm_kib: u64,
}

/// VmRSS and VmHWM (kiB) from the text of /proc/PID/status.
pub fn parse_status(text: &str) -> Option<(u64, u64)> {
    let field = |name: &str| {
        text.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.split_whitespace().next()?.parse().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Samples a process every `every` until finished.
pub struct Sampler {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<Vec<Sample>>,
}

impl Sampler {
    pub fn start(pid: u32, every: Duration) -> std::io::Result<Sampler> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new().name("rss-sampler".into()).spawn(move || {
            let started = Instant::now();
            let path = format!("/proc/{pid}/status");
            let mut samples = Vec::new();
            loop {
                let status = std::fs::read_to_string(&path).ok();
                if let Some((rss_kib, hwm_kib)) = status.as_deref().and_then(parse_status) {
                    samples.push(Sample { at: started.elapsed(), rss_kib, hwm_kib });
                }
                if !matches!(stopped.recv_timeout(every), Err(mpsc::RecvTimeoutError::Timeout)) {
                    return samples;
                }
            }
        })?;
        Ok(Sampler { stop, thread })
    }

    /// Takes a last sample and returns them all.
    pub fn finish(self) -> Vec<Sample> {
        let _ = self.stop.send(());
        self.thread.join().unwrap_or_default()
    }
}

/// What the samples say.
#[derive(Debug, Clone, PartialEq)]
pub struct Trend {
    pub start_kib: u64,
    pub peak_kib: u64,
    pub end_kib: u64,
    /// Median of the last third minus median of the first third, after warm-up.
    pub growth_kib: i64,
    /// Least-squares slope over the samples after warm-up.
    pub slope_mib_per_hour: f64,
    /// `None`: the run was too short to judge.
    pub flat: Option<bool>,
}

/// Judges the samples: the first fifth of the run is warm-up and not compared.
pub fn trend(samples: &[Sample]) -> Option<Trend> {
    let (first, last) = (samples.first()?, samples.last()?);
    let peak_kib = samples.iter().map(|s| s.hwm_kib.max(s.rss_kib)).max()?;
    let warm = last.at / 5;
    let steady: Vec<&Sample> = samples.iter().filter(|s| s.at >= warm).collect();
    let third = (steady.len() / 3).max(1);
    let median = |part: &[&Sample]| {
        let mut v: Vec<u64> = part.iter().map(|s| s.rss_kib).collect();
        v.sort_unstable();
        v.get(v.len() / 2).copied().unwrap_or(0)
    };
    let early = median(&steady[..third.min(steady.len())]);
    let late = median(&steady[steady.len().saturating_sub(third)..]);
    let growth_kib = late as i64 - early as i64;
    let allowed = ALLOWED_GROWTH_KIB.max((early as f64 * ALLOWED_GROWTH_SHARE) as u64) as i64;
    let flat = (last.at >= MIN_JUDGED_RUN).then_some(growth_kib <= allowed);
    Some(Trend {
        start_kib: first.rss_kib,
        peak_kib,
        end_kib: last.rss_kib,
        growth_kib,
        slope_mib_per_hour: slope(&steady) * 3600.0 / 1024.0,
        flat,
    })
}

/// kiB per second, by least squares.
fn slope(samples: &[&Sample]) -> f64 {
    let n = samples.len() as f64;
    if samples.len() < 2 {
        return 0.0;
    }
    let xs: Vec<f64> = samples.iter().map(|s| s.at.as_secs_f64()).collect();
    let ys: Vec<f64> = samples.iter().map(|s| s.rss_kib as f64).collect();
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let num: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let den: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
    if den > 0.0 {
        num / den
    } else {
        0.0
    }
}

/// kiB as "12.3 MiB".
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(minutes: u64, rss: impl Fn(u64) -> u64) -> Vec<Sample> {
        (0..=minutes * 6)
            .map(|i| Sample { at: Duration::from_secs(i * 10), rss_kib: rss(i), hwm_kib: rss(i) })
            .collect()
    }

    #[test]
    fn reads_proc_status() {
        let text = "Name:\tio-gateway\nVmHWM:\t   20480 kB\nVmRSS:\t   18432 kB\nThreads:\t5\n";
        assert_eq!(parse_status(text), Some((18432, 20480)));
        assert_eq!(parse_status("Name: x\n"), None);
    }

    #[test]
    fn a_flat_run_with_a_warm_up_is_flat() {
        let t = trend(&samples(10, |i| if i < 5 { 10_000 + i * 1000 } else { 16_000 + i % 3 })).unwrap();
        assert_eq!((t.start_kib, t.flat), (10_000, Some(true)));
        assert!(t.slope_mib_per_hour.abs() < 1.0, "{t:?}");
    }

    #[test]
    fn steady_growth_is_not_flat_and_short_runs_are_not_judged() {
        let t = trend(&samples(10, |i| 20_000 + i * 400)).unwrap();
        assert_eq!(t.flat, Some(false), "{t:?}");
        assert!(t.slope_mib_per_hour > 50.0, "{t:?}");
        assert_eq!(trend(&samples(1, |i| 20_000 + i * 400)).unwrap().flat, None);
        assert_eq!(trend(&[]), None);
    }
}
