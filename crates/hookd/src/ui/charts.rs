//! Pure arithmetic behind the charts: attempt samples → time buckets, success rates and latency
//! percentiles. No IO; the screens fetch samples and hand them in with `now`.

use crate::store::ui::AttemptSample;
use serde::Serialize;
use std::collections::HashMap;

/// Most attempts read for one chart; beyond this the charts show the newest ones (and say so).
pub const MAX_SAMPLES: u32 = 100_000;

/// A chart's time window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    Hour,
    Day,
    Week,
    Month,
}

impl Range {
    pub const ALL: [Range; 4] = [Self::Hour, Self::Day, Self::Week, Self::Month];

    pub fn parse(raw: Option<&str>) -> Self {
        match raw {
            Some("1h") => Self::Hour,
            Some("7d") => Self::Week,
            Some("30d") => Self::Month,
            _ => Self::Day,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Hour => "1h",
            Self::Day => "24h",
            Self::Week => "7d",
            Self::Month => "30d",
        }
    }

    pub fn span_ms(self) -> i64 {
        const HOUR: i64 = 3_600_000;
        match self {
            Self::Hour => HOUR,
            Self::Day => 24 * HOUR,
            Self::Week => 7 * 24 * HOUR,
            Self::Month => 30 * 24 * HOUR,
        }
    }

    /// Bucket width: 1 min, 15 min, 1 h, 6 h.
    pub fn bucket_ms(self) -> i64 {
        const MINUTE: i64 = 60_000;
        match self {
            Self::Hour => MINUTE,
            Self::Day => 15 * MINUTE,
            Self::Week => 60 * MINUTE,
            Self::Month => 360 * MINUTE,
        }
    }
}

/// Column-oriented series, as uPlot takes them (`null` where a bucket has no attempt).
#[derive(Debug, Default, Serialize, PartialEq)]
pub struct Series {
    /// Bucket start, Unix seconds.
    pub t: Vec<i64>,
    pub per_minute: Vec<f64>,
    pub success_pct: Vec<Option<f64>>,
    pub p50: Vec<Option<i64>>,
    pub p95: Vec<Option<i64>>,
    pub p99: Vec<Option<i64>>,
}

#[derive(Debug, Default, PartialEq)]
pub struct Summary {
    pub attempts: usize,
    pub per_minute: f64,
    pub success_pct: Option<f64>,
    pub p50: Option<i64>,
    pub p95: Option<i64>,
    pub p99: Option<i64>,
    /// The window held more attempts than were read.
    pub truncated: bool,
}

/// The `q`-quantile (0..=1) of sorted values, nearest rank.
pub fn percentile(sorted: &[i64], q: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn success_pct(ok: usize, total: usize) -> Option<f64> {
    (total > 0).then(|| (ok as f64 * 1000.0 / total as f64).round() / 10.0)
}

pub fn summarize(samples: &[AttemptSample], range: Range) -> Summary {
    let mut latencies: Vec<i64> = samples.iter().map(|s| s.duration_ms).collect();
    latencies.sort_unstable();
    let ok = samples.iter().filter(|s| s.ok).count();
    Summary {
        attempts: samples.len(),
        per_minute: samples.len() as f64 * 60_000.0 / range.span_ms() as f64,
        success_pct: success_pct(ok, samples.len()),
        p50: percentile(&latencies, 0.50),
        p95: percentile(&latencies, 0.95),
        p99: percentile(&latencies, 0.99),
        truncated: samples.len() >= MAX_SAMPLES as usize,
    }
}

/// Buckets `[now - span, now)` into fixed-width columns.
pub fn series(samples: &[AttemptSample], range: Range, now: i64) -> Series {
    let width = range.bucket_ms();
    let first = (now - range.span_ms()).div_euclid(width) * width;
    let count = ((now - first) / width + 1) as usize;
    let mut buckets: Vec<Vec<&AttemptSample>> = vec![Vec::new(); count];
    for sample in samples {
        let index = (sample.started_at - first).div_euclid(width);
        if (0..count as i64).contains(&index) {
            buckets[index as usize].push(sample);
        }
    }
    let mut out = Series::default();
    for (i, bucket) in buckets.iter().enumerate() {
        let mut latencies: Vec<i64> = bucket.iter().map(|s| s.duration_ms).collect();
        latencies.sort_unstable();
        let ok = bucket.iter().filter(|s| s.ok).count();
        out.t.push((first + i as i64 * width) / 1000);
        out.per_minute
            .push((bucket.len() as f64 * 60_000.0 / width as f64 * 100.0).round() / 100.0);
        out.success_pct.push(success_pct(ok, bucket.len()));
        out.p50.push(percentile(&latencies, 0.50));
        out.p95.push(percentile(&latencies, 0.95));
        out.p99.push(percentile(&latencies, 0.99));
    }
    out
}

/// Per subscription: (attempts, failures, newest attempt).
pub fn per_subscription(samples: &[AttemptSample]) -> HashMap<&str, (usize, usize, i64)> {
    let mut map: HashMap<&str, (usize, usize, i64)> = HashMap::new();
    for sample in samples {
        let entry = map.entry(sample.subscription_id.as_str()).or_default();
        entry.0 += 1;
        entry.1 += usize::from(!sample.ok);
        entry.2 = entry.2.max(sample.started_at);
    }
    map
}

/// The subscriptions with the most failed attempts: (id, failures, attempts), at most `n`.
pub fn failing_most(samples: &[AttemptSample], n: usize) -> Vec<(String, usize, usize)> {
    let mut rows: Vec<_> = per_subscription(samples)
        .into_iter()
        .filter(|(_, (_, failures, _))| *failures > 0)
        .map(|(id, (total, failures, _))| (id.to_owned(), failures, total))
        .collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    rows.truncate(n);
    rows
}

/// A 24-point success-rate sparkline of one subscription as an SVG polyline (`points` attribute),
/// over `[now - 24 h, now)`; hours without attempts are skipped.
pub fn sparkline_points(samples: &[AttemptSample], subscription_id: &str, now: i64) -> String {
    const HOUR: i64 = 3_600_000;
    let mut hours = [(0usize, 0usize); 24];
    for sample in samples
        .iter()
        .filter(|s| s.subscription_id == subscription_id)
    {
        let age = now - sample.started_at;
        if (0..24 * HOUR).contains(&age) {
            let slot = 23 - (age / HOUR) as usize;
            hours[slot].0 += 1;
            hours[slot].1 += usize::from(sample.ok);
        }
    }
    let points: Vec<(usize, f64)> = hours
        .iter()
        .enumerate()
        .filter(|(_, (total, _))| *total > 0)
        .map(|(i, (total, ok))| (i * 4, 21.0 - 18.0 * (*ok as f64 / *total as f64)))
        .collect();
    match points.as_slice() {
        // A polyline of one point draws nothing: one hour of data is a segment across its hour.
        [(x, y)] => format!("{x},{y:.1} {},{y:.1}", x + 4),
        _ => points
            .iter()
            .map(|(x, y)| format!("{x},{y:.1}"))
            .collect::<Vec<_>>()
            .join(" "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at: i64, ms: i64, ok: bool, sub: &str) -> AttemptSample {
        AttemptSample {
            started_at: at,
            duration_ms: ms,
            ok,
            subscription_id: sub.into(),
        }
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let values: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&values, 0.50), Some(50));
        assert_eq!(percentile(&values, 0.95), Some(95));
        assert_eq!(percentile(&values, 0.99), Some(99));
        assert_eq!(percentile(&[7], 0.99), Some(7));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn summary_and_buckets() {
        let now = 10 * 3_600_000;
        let samples = vec![
            sample(now - 30_000, 10, true, "a"),
            sample(now - 30_000, 30, false, "b"),
            sample(now - 90_000, 20, true, "a"),
            sample(now - 2 * 3_600_000, 99, true, "a"), // outside 1 h
        ];
        let in_hour: Vec<_> = samples[..3].to_vec();
        let summary = summarize(&in_hour, Range::Hour);
        assert_eq!(summary.attempts, 3);
        assert_eq!(summary.success_pct, Some(66.7));
        assert_eq!(summary.p50, Some(20));
        assert_eq!(summary.p99, Some(30));
        let series = series(&samples, Range::Hour, now);
        assert_eq!(series.t.len(), 61);
        let last = series.t.len() - 1;
        assert_eq!(series.per_minute[last - 1], 2.0);
        assert_eq!(series.success_pct[last - 1], Some(50.0));
        assert_eq!(
            series.per_minute.iter().sum::<f64>(),
            3.0,
            "the old sample is dropped"
        );
        assert_eq!(failing_most(&samples, 5), vec![("b".into(), 1, 1)]);
    }

    #[test]
    fn sparkline_marks_hours_with_attempts() {
        let now = 100 * 3_600_000;
        let samples = vec![
            sample(now - 10, 5, true, "a"),
            sample(now - 10, 5, false, "a"),
        ];
        // Under an hour of data still draws: a segment across the current hour.
        assert_eq!(sparkline_points(&samples, "a", now), "92,12.0 96,12.0");
        assert_eq!(sparkline_points(&samples, "b", now), "");
        let two_hours = vec![
            sample(now - 10, 5, true, "a"),
            sample(now - 3_600_000 - 10, 5, false, "a"),
        ];
        assert_eq!(sparkline_points(&two_hours, "a", now), "88,21.0 92,3.0");
    }
}
