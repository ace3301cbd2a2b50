//! Prometheus metrics: requests and latencies by route and outcome, and the gallery sizes.
//! No label ever holds a subject id, a key or a score.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// Latency buckets, seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Default)]
struct Series {
    count: u64,
    sum: f64,
    buckets: [u64; BUCKETS.len()],
}

/// The counters of one process.
#[derive(Default)]
pub struct Metrics {
    series: Mutex<BTreeMap<(&'static str, &'static str, u16), Series>>,
}

impl Metrics {
    /// Records one request on `route` (its pattern, never its path) ending in `status`.
    pub fn observe(&self, route: &'static str, method: &'static str, status: u16, took: Duration) {
        let Ok(mut m) = self.series.lock() else {
            return;
        };
        let s = m.entry((route, method, status)).or_default();
        let secs = took.as_secs_f64();
        s.count += 1;
        s.sum += secs;
        for (b, le) in s.buckets.iter_mut().zip(BUCKETS) {
            if secs <= le {
                *b += 1;
            }
        }
    }

    /// The exposition text, with the gallery sizes given.
    pub fn render(&self, face_subjects: usize, finger_subjects: usize) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP ipseity_requests_total Requests by route, method and status."
        );
        let _ = writeln!(out, "# TYPE ipseity_requests_total counter");
        let Ok(m) = self.series.lock() else {
            return out;
        };
        for ((route, method, status), s) in m.iter() {
            let _ = writeln!(
                out,
                "ipseity_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {}",
                s.count
            );
        }
        let _ = writeln!(
            out,
            "# HELP ipseity_request_seconds Request latency by route and status."
        );
        let _ = writeln!(out, "# TYPE ipseity_request_seconds histogram");
        for ((route, method, status), s) in m.iter() {
            let labels = format!("route=\"{route}\",method=\"{method}\",status=\"{status}\"");
            for (b, le) in s.buckets.iter().zip(BUCKETS) {
                let _ = writeln!(
                    out,
                    "ipseity_request_seconds_bucket{{{labels},le=\"{le}\"}} {b}"
                );
            }
            let _ = writeln!(
                out,
                "ipseity_request_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(out, "ipseity_request_seconds_sum{{{labels}}} {}", s.sum);
            let _ = writeln!(out, "ipseity_request_seconds_count{{{labels}}} {}", s.count);
        }
        let _ = writeln!(
            out,
            "# HELP ipseity_gallery_subjects Subjects in the live galleries."
        );
        let _ = writeln!(out, "# TYPE ipseity_gallery_subjects gauge");
        let _ = writeln!(
            out,
            "ipseity_gallery_subjects{{modality=\"face\"}} {face_subjects}"
        );
        let _ = writeln!(
            out,
            "ipseity_gallery_subjects{{modality=\"finger\"}} {finger_subjects}"
        );
        out
    }
}
