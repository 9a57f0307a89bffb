//! The emulator's GetFindings quota: a token bucket like the service's, and a meter of the
//! smallest bucket that would have admitted every request a client sent.

use std::time::Instant;

/// A token bucket refilled at `rate` per second up to `burst`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: f64, burst: u32, now: Instant) -> Self {
        TokenBucket {
            rate,
            burst: burst as f64,
            tokens: burst as f64,
            last: now,
        }
    }

    /// Takes a token if one is available at `now`.
    pub fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Tracks the peak level of a leaky bucket draining at `rate` that every arrival fills by one:
/// the peak is the burst a client needed, so `peak <= burst` means it never exceeded the quota.
#[derive(Debug, Clone)]
pub struct DemandMeter {
    rate: f64,
    level: f64,
    peak: f64,
    last: Option<Instant>,
}

impl DemandMeter {
    /// A meter at the quota `rate`.
    pub fn new(rate: f64) -> Self {
        DemandMeter {
            rate,
            level: 0.0,
            peak: 0.0,
            last: None,
        }
    }

    /// Records one arrival.
    pub fn record(&mut self, now: Instant) {
        if let Some(last) = self.last {
            let drained = now.saturating_duration_since(last).as_secs_f64() * self.rate;
            self.level = (self.level - drained).max(0.0);
        }
        self.last = Some(now);
        self.level += 1.0;
        self.peak = self.peak.max(self.level);
    }

    /// The largest burst the arrivals needed.
    pub fn peak(&self) -> f64 {
        self.peak
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_full_bucket_admits_the_burst_then_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(3.0, 6, start);
        let admitted = (0..10).filter(|_| bucket.try_take(start)).count();
        assert_eq!(admitted, 6);
        assert!(!bucket.try_take(start + Duration::from_millis(300)));
        assert!(bucket.try_take(start + Duration::from_millis(334)));
        // Over 10 s at most 30 more.
        let mut more = 0;
        for ms in (340..10_340).step_by(10) {
            if bucket.try_take(start + Duration::from_millis(ms)) {
                more += 1;
            }
        }
        assert!((29..=31).contains(&more), "{more}");
    }

    #[test]
    fn the_demand_meter_reports_the_burst_a_client_used() {
        let start = Instant::now();
        let mut paced = DemandMeter::new(3.0);
        for i in 0..30 {
            paced.record(start + Duration::from_millis(i * 334));
        }
        assert!(paced.peak() <= 1.01, "{}", paced.peak());
        let mut bursty = DemandMeter::new(3.0);
        for _ in 0..8 {
            bursty.record(start);
        }
        assert_eq!(bursty.peak(), 8.0);
    }
}
