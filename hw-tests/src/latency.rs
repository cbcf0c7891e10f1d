//! Latency samples and their summary: p50, p99 and max (nearest rank), and a rate.

use std::time::Duration;

/// Collected durations of one kind of operation.
#[derive(Debug, Clone, Default)]
pub struct Latencies {
    samples: Vec<Duration>,
}

/// The summary the reports print.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub count: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Latencies {
    pub fn new() -> Latencies {
        Latencies::default()
    }

    pub fn push(&mut self, sample: Duration) {
        self.samples.push(sample);
    }

    pub fn extend(&mut self, other: Latencies) {
        self.samples.extend(other.samples);
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// `None` when there are no samples.
    pub fn summary(&self) -> Option<Summary> {
        let mut sorted = self.samples.clone();
        sorted.sort_unstable();
        let rank = |p: f64| {
            let index = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
            sorted[index]
        };
        let max = *sorted.last()?;
        Some(Summary { count: sorted.len(), p50: rank(0.50), p99: rank(0.99), max })
    }
}

impl Summary {
    /// "p50 0.412 ms, p99 1.203 ms, max 5.000 ms".
    pub fn describe(&self) -> String {
        format!("p50 {}, p99 {}, max {}", millis(self.p50), millis(self.p99), millis(self.max))
    }
}

/// A duration in milliseconds with three decimals.
pub fn millis(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

/// `count / elapsed`, per second.
pub fn rate(count: usize, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn nearest_rank_percentiles() {
        let mut l = Latencies::new();
        for n in (1..=100).rev() {
            l.push(ms(n));
        }
        let s = l.summary().unwrap();
        assert_eq!((s.count, s.p50, s.p99, s.max), (100, ms(50), ms(99), ms(100)));
        let mut one = Latencies::new();
        one.push(ms(7));
        let s = one.summary().unwrap();
        assert_eq!((s.p50, s.p99, s.max), (ms(7), ms(7), ms(7)));
        assert!(Latencies::new().summary().is_none());
    }

    #[test]
    fn describes_in_milliseconds() {
        let s = Summary { count: 3, p50: Duration::from_micros(412), p99: ms(1), max: ms(5) };
        assert_eq!(s.describe(), "p50 0.412 ms, p99 1.000 ms, max 5.000 ms");
        assert_eq!(rate(10, Duration::from_secs(4)), 2.5);
    }
}
