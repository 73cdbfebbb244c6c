//! Scenario units, written as Presto writes them: durations (`90s`, `10m`), sizes (`8GB`) and
//! rates (`5/s`, `1/10m`).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use fireball::config::{parse_data_size_bytes, parse_duration_ms};

/// Milliseconds, written `"500ms"`, `"30s"`, `"10m"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Duration(pub u64);

impl Duration {
    pub fn zero() -> Duration {
        Duration(0)
    }
}

/// Bytes, written `"512MB"`, `"8GB"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bytes(pub u64);

/// Events per second, written `"5/s"`, `"30/m"` or `"1/10m"`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    text_count: f64,
    text_period_ms: u64,
}

impl Rate {
    pub fn parse(text: &str) -> Result<Rate, String> {
        let (count, period) = text.split_once('/').ok_or_else(|| format!("rate {text:?}: expected COUNT/PERIOD, e.g. 5/s or 1/10m"))?;
        let count: f64 = count.trim().parse().map_err(|_| format!("rate {text:?}: {count:?} is not a number"))?;
        let period = period.trim();
        let period_ms = match period {
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            other => parse_duration_ms(other).map_err(|reason| format!("rate {text:?}: {reason}"))?,
        };
        if !(count.is_finite() && count > 0.0) || period_ms == 0 {
            return Err(format!("rate {text:?}: must be positive"));
        }
        Ok(Rate { per_second: count * 1_000.0 / period_ms as f64, text_count: count, text_period_ms: period_ms })
    }
}

/// Signed durations for clock offsets: `"-30s"`.
pub fn parse_signed_duration_ms(text: &str) -> Result<i64, String> {
    let text = text.trim();
    match text.strip_prefix('-') {
        Some(rest) => Ok(-(parse_duration_ms(rest)? as i64)),
        None => Ok(parse_duration_ms(text.trim_start_matches('+'))? as i64),
    }
}

fn format_ms(ms: u64) -> String {
    if ms.is_multiple_of(3_600_000) && ms > 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) && ms > 0 {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1_000) {
        format!("{}s", ms / 1_000)
    } else {
        format!("{ms}ms")
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_duration_ms(&text).map(Duration).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format_ms(self.0))
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_data_size_bytes(&text).map(Bytes).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&fireball::config::format_data_size(self.0).replace(".00", ""))
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Rate::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format!("{}/{}", self.text_count, format_ms(self.text_period_ms)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_signed_durations() {
        assert_eq!(Rate::parse("5/s").unwrap().per_second, 5.0);
        assert!((Rate::parse("1/10m").unwrap().per_second - 1.0 / 600.0).abs() < 1e-12);
        assert_eq!(Rate::parse("30/m").unwrap().per_second, 0.5);
        assert!(Rate::parse("5").is_err());
        assert!(Rate::parse("0/s").is_err());
        assert_eq!(parse_signed_duration_ms("-30s"), Ok(-30_000));
        assert_eq!(format_ms(600_000), "10m");
        assert_eq!(format_ms(1_500), "1500ms");
    }
}
