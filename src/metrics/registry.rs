//! A small Prometheus registry: counters, gauges and histograms with labels, rendered in the text
//! exposition format 0.0.4. Pure data, no I/O and no clock (callers pass durations in), so it is
//! the same under tokio and madsim and can be unit-tested directly.
//!
//! Families and series live in `BTreeMap`s, so a scrape lists them in one deterministic order
//! (by metric name, then by label values), which keeps simulation runs comparable.
//!
//! What it writes is checked by Prometheus' own parser, not by one of ours:
//! `tests/cluster_processes.rs` pipes real nodes' `/metrics` through `promtool check metrics`.
//!
//! **Bounded cardinality.** A family holds at most [`SERIES_PER_METRIC_MAX`] series. A new label
//! set beyond that is folded into one series whose every label value is `other`, so a label fed by
//! something unbounded (a node id, a peer URI, a group id from a client's session) can never make
//! a node's memory or its scrape grow without limit. The `other` series is the only one allowed
//! past the cap (so a family holds at most `SERIES_PER_METRIC_MAX + 1` series).

use std::collections::BTreeMap;
use std::fmt::Write;

/// Series one metric family may hold before new label sets fold into `other` (see the module doc).
pub const SERIES_PER_METRIC_MAX: usize = 1_000;
/// Label values are cut to this many characters: with the series cap this bounds a scrape in
/// bytes, whatever a peer put in a node id (the 100 KB ids made a 99.7 MB `/metrics`).
pub const LABEL_VALUE_CHARS_MAX: usize = 128;

/// The label value every label of a folded series gets.
pub const FOLDED_LABEL_VALUE: &str = "other";

/// Upper bounds of the histogram buckets, in milliseconds (rendered in seconds: `le="0.005"`).
/// One fixed set for every histogram: it spans a fast local HTTP answer (1 ms) to a heartbeat gap
/// of a minute, which is all fireball times. `+Inf` is implied.
pub const BUCKET_BOUNDS_MS: [u64; 14] = [1, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// What a metric is: declared once as a `const`, used wherever the metric is updated.
#[derive(Debug)]
pub struct MetricDef {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub labels: &'static [&'static str],
}

#[derive(Clone, Debug, PartialEq)]
enum Series {
    Counter(u64),
    Gauge(f64),
    /// Per-bucket (not yet cumulative) counts, one per bound plus the `+Inf` overflow.
    Histogram { bucket_counts: [u64; BUCKET_BOUNDS_MS.len() + 1], sum_ms: u64, count: u64 },
}

impl Series {
    fn new(kind: Kind) -> Self {
        match kind {
            Kind::Counter => Series::Counter(0),
            Kind::Gauge => Series::Gauge(0.0),
            Kind::Histogram => Series::Histogram { bucket_counts: [0; BUCKET_BOUNDS_MS.len() + 1], sum_ms: 0, count: 0 },
        }
    }
}

struct Family {
    def: &'static MetricDef,
    series: BTreeMap<Vec<String>, Series>,
}

#[derive(Default)]
pub struct Registry {
    families: BTreeMap<&'static str, Family>,
}

impl Registry {
    pub fn new() -> Self {
        Registry::default()
    }

    /// Makes `def` appear in the scrape (HELP and TYPE) even before it has a series.
    pub fn declare(&mut self, def: &'static MetricDef) {
        self.family(def);
    }

    pub fn counter_add(&mut self, def: &'static MetricDef, label_values: &[&str], amount: u64) {
        debug_assert_eq!(def.kind, Kind::Counter, "{} is not a counter", def.name);
        if let Series::Counter(value) = self.series(def, label_values) {
            *value = value.saturating_add(amount);
        }
    }

    pub fn gauge_set(&mut self, def: &'static MetricDef, label_values: &[&str], value: f64) {
        debug_assert_eq!(def.kind, Kind::Gauge, "{} is not a gauge", def.name);
        if let Series::Gauge(current) = self.series(def, label_values) {
            *current = value;
        }
    }

    /// Removes every series of a gauge family: scrape-time gauges are rebuilt from state each
    /// time, so a group or node that went away stops being reported.
    pub fn gauge_clear(&mut self, def: &'static MetricDef) {
        debug_assert_eq!(def.kind, Kind::Gauge, "{} is not a gauge", def.name);
        self.family(def).series.clear();
    }

    pub fn observe_ms(&mut self, def: &'static MetricDef, label_values: &[&str], duration_ms: u64) {
        debug_assert_eq!(def.kind, Kind::Histogram, "{} is not a histogram", def.name);
        if let Series::Histogram { bucket_counts, sum_ms, count } = self.series(def, label_values) {
            let bucket = BUCKET_BOUNDS_MS.iter().position(|&bound_ms| duration_ms <= bound_ms).unwrap_or(BUCKET_BOUNDS_MS.len());
            bucket_counts[bucket] += 1;
            *sum_ms = sum_ms.saturating_add(duration_ms);
            *count += 1;
        }
    }

    /// Number of series `def` holds (tests and the cap).
    pub fn series_count(&self, def: &'static MetricDef) -> usize {
        self.families.get(def.name).map_or(0, |family| family.series.len())
    }

    fn family(&mut self, def: &'static MetricDef) -> &mut Family {
        self.families.entry(def.name).or_insert_with(|| Family { def, series: BTreeMap::new() })
    }

    fn series(&mut self, def: &'static MetricDef, label_values: &[&str]) -> &mut Series {
        // A mismatch is a programming error; pad or cut so production still renders valid text.
        debug_assert_eq!(label_values.len(), def.labels.len(), "{}: label values {label_values:?}", def.name);
        let mut key: Vec<String> = (0..def.labels.len())
            .map(|index| label_values.get(index).copied().unwrap_or("").chars().take(LABEL_VALUE_CHARS_MAX).collect())
            .collect();
        let family = self.family(def);
        if !family.series.contains_key(&key) && family.series.len() >= SERIES_PER_METRIC_MAX {
            key = vec![FOLDED_LABEL_VALUE.to_string(); def.labels.len()];
        }
        family.series.entry(key).or_insert_with(|| Series::new(def.kind))
    }

    /// The whole registry in the text exposition format 0.0.4.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for family in self.families.values() {
            render_family(&mut out, family);
        }
        out
    }
}

fn render_family(out: &mut String, family: &Family) {
    let def = family.def;
    let _ = writeln!(out, "# HELP {} {}", def.name, escape_help(def.help));
    let _ = writeln!(out, "# TYPE {} {}", def.name, def.kind.name());
    for (values, series) in &family.series {
        let labels: Vec<(&str, &str)> = def.labels.iter().copied().zip(values.iter().map(String::as_str)).collect();
        match series {
            Series::Counter(value) => {
                let _ = writeln!(out, "{}{} {value}", def.name, label_set(&labels, None));
            }
            Series::Gauge(value) => {
                let _ = writeln!(out, "{}{} {}", def.name, label_set(&labels, None), format_float(*value));
            }
            Series::Histogram { bucket_counts, sum_ms, count } => {
                let mut cumulative = 0;
                for (index, bucket_count) in bucket_counts.iter().enumerate() {
                    cumulative += bucket_count;
                    let le = BUCKET_BOUNDS_MS.get(index).map_or_else(|| "+Inf".to_string(), |&bound_ms| seconds_from_ms(bound_ms));
                    let _ = writeln!(out, "{}_bucket{} {cumulative}", def.name, label_set(&labels, Some(&le)));
                }
                debug_assert_eq!(cumulative, *count);
                let _ = writeln!(out, "{}_sum{} {}", def.name, label_set(&labels, None), seconds_from_ms(*sum_ms));
                let _ = writeln!(out, "{}_count{} {count}", def.name, label_set(&labels, None));
            }
        }
    }
}

/// `{a="x",b="y"}` (with `le` last for histogram buckets), or nothing when there are no labels.
fn label_set(labels: &[(&str, &str)], le: Option<&str>) -> String {
    let mut parts: Vec<String> = labels.iter().map(|(name, value)| format!("{name}=\"{}\"", escape_label_value(value))).collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

/// Label values escape backslash, double quote and line feed (format 0.0.4).
pub fn escape_label_value(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for character in value.chars() {
        match character {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// HELP text escapes backslash and line feed (a double quote stays as it is).
fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Exact decimal seconds from milliseconds, without float rounding: 5 -> "0.005", 2500 -> "2.5".
pub fn seconds_from_ms(ms: u64) -> String {
    let fraction = ms % 1_000;
    if fraction == 0 {
        return (ms / 1_000).to_string();
    }
    let digits = format!("{fraction:03}");
    format!("{}.{}", ms / 1_000, digits.trim_end_matches('0'))
}

/// Prometheus spells the special values `+Inf`, `-Inf` and `NaN`.
pub fn format_float(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_string()
    } else if value == f64::INFINITY {
        "+Inf".to_string()
    } else if value == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUESTS: MetricDef = MetricDef { name: "t_requests_total", help: "Requests.", kind: Kind::Counter, labels: &["route", "status"] };
    const PLAIN: MetricDef = MetricDef { name: "t_plain_total", help: "A \\ backslash\nand a newline.", kind: Kind::Counter, labels: &[] };
    const AGE: MetricDef = MetricDef { name: "t_age_seconds", help: "Age.", kind: Kind::Gauge, labels: &["node"] };
    const LATENCY: MetricDef = MetricDef { name: "t_latency_seconds", help: "Latency.", kind: Kind::Histogram, labels: &["route"] };

    #[test]
    fn counters_render_with_help_type_and_sorted_series() {
        let mut registry = Registry::new();
        registry.counter_add(&REQUESTS, &["/b", "2xx"], 2);
        registry.counter_add(&REQUESTS, &["/a", "5xx"], 1);
        registry.counter_add(&REQUESTS, &["/b", "2xx"], 3);
        assert_eq!(
            registry.render(),
            "# HELP t_requests_total Requests.\n\
             # TYPE t_requests_total counter\n\
             t_requests_total{route=\"/a\",status=\"5xx\"} 1\n\
             t_requests_total{route=\"/b\",status=\"2xx\"} 5\n"
        );
    }

    #[test]
    fn declared_family_without_series_has_only_metadata_and_help_is_escaped() {
        let mut registry = Registry::new();
        registry.declare(&PLAIN);
        assert_eq!(registry.render(), "# HELP t_plain_total A \\\\ backslash\\nand a newline.\n# TYPE t_plain_total counter\n");
        registry.counter_add(&PLAIN, &[], 1);
        assert!(registry.render().ends_with("\nt_plain_total 1\n"), "{}", registry.render());
    }

    #[test]
    fn label_values_are_escaped() {
        let mut registry = Registry::new();
        registry.gauge_set(&AGE, &["a\"b\\c\nd"], 1.5);
        assert!(registry.render().contains("t_age_seconds{node=\"a\\\"b\\\\c\\nd\"} 1.5\n"), "{}", registry.render());
        assert_eq!(escape_label_value("plain"), "plain");
    }

    #[test]
    fn gauges_render_special_values_and_clear() {
        let mut registry = Registry::new();
        registry.gauge_set(&AGE, &["n1"], f64::INFINITY);
        registry.gauge_set(&AGE, &["n2"], 0.25);
        let text = registry.render();
        assert!(text.contains("t_age_seconds{node=\"n1\"} +Inf\n") && text.contains("t_age_seconds{node=\"n2\"} 0.25\n"), "{text}");
        registry.gauge_clear(&AGE);
        assert_eq!(registry.series_count(&AGE), 0);
        assert_eq!(format_float(f64::NAN), "NaN");
        assert_eq!(format_float(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_float(3.0), "3");
    }

    #[test]
    fn histogram_buckets_are_cumulative_with_inf_sum_and_count() {
        let mut registry = Registry::new();
        for duration_ms in [0, 1, 7, 7, 2_500, 120_000] {
            registry.observe_ms(&LATENCY, &["/q"], duration_ms);
        }
        let text = registry.render();
        let expected_buckets = [
            ("0.001", 2),
            ("0.005", 2),
            ("0.01", 4),
            ("0.025", 4),
            ("0.05", 4),
            ("0.1", 4),
            ("0.25", 4),
            ("0.5", 4),
            ("1", 4),
            ("2.5", 5),
            ("5", 5),
            ("10", 5),
            ("30", 5),
            ("60", 5),
            ("+Inf", 6),
        ];
        let mut expected = String::from("# HELP t_latency_seconds Latency.\n# TYPE t_latency_seconds histogram\n");
        for (le, count) in expected_buckets {
            expected.push_str(&format!("t_latency_seconds_bucket{{route=\"/q\",le=\"{le}\"}} {count}\n"));
        }
        expected.push_str("t_latency_seconds_sum{route=\"/q\"} 122.515\n");
        expected.push_str("t_latency_seconds_count{route=\"/q\"} 6\n");
        assert_eq!(text, expected);
    }

    #[test]
    fn seconds_are_exact_decimals() {
        assert_eq!(seconds_from_ms(0), "0");
        assert_eq!(seconds_from_ms(5), "0.005");
        assert_eq!(seconds_from_ms(10), "0.01");
        assert_eq!(seconds_from_ms(1_000), "1");
        assert_eq!(seconds_from_ms(61_230), "61.23");
    }

    #[test]
    fn long_label_values_are_cut_so_a_scrape_is_bounded_in_bytes() {
        let mut registry = Registry::new();
        for index in 0..SERIES_PER_METRIC_MAX + 50 {
            registry.gauge_set(&AGE, &[&format!("{index}-{}", "é".repeat(100_000))], 1.0);
        }
        let text = registry.render();
        let bound = (SERIES_PER_METRIC_MAX + 1) * (LABEL_VALUE_CHARS_MAX * 2 + 64) + 1_000;
        assert!(text.len() < bound, "{} bytes", text.len());
        assert!(text.contains(&format!("t_age_seconds{{node=\"7-{}\"}} 1\n", "é".repeat(LABEL_VALUE_CHARS_MAX - 2))));
    }

    #[test]
    fn cardinality_is_capped_by_folding_into_other() {
        let mut registry = Registry::new();
        for index in 0..SERIES_PER_METRIC_MAX + 50 {
            registry.counter_add(&REQUESTS, &[&format!("/r{index}"), "2xx"], 1);
        }
        assert_eq!(registry.series_count(&REQUESTS), SERIES_PER_METRIC_MAX + 1);
        let text = registry.render();
        assert!(text.contains("t_requests_total{route=\"other\",status=\"other\"} 50\n"), "folded series missing");
        // Series that existed before the cap keep counting on their own.
        registry.counter_add(&REQUESTS, &["/r0", "2xx"], 1);
        assert!(registry.render().contains("t_requests_total{route=\"/r0\",status=\"2xx\"} 2\n"));
        assert_eq!(registry.series_count(&REQUESTS), SERIES_PER_METRIC_MAX + 1);
    }
}
