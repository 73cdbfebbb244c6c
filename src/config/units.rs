//! Presto's textual units: durations (`500ms`, `1.5s`, `10m`) and data sizes (`512MB`, `8GB`).

/// Parses an airlift `Duration`: a number followed by `ns`, `us`, `ms`, `s`, `m`, `h` or `d`.
/// Returns whole milliseconds (sub-millisecond values round up to 1 ms unless zero).
pub fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("duration {text:?} has no unit (use ms, s, m, h or d)"))?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| format!("duration {text:?} does not start with a number"))?;
    let unit_ms = match unit.trim() {
        "ns" => 1e-6,
        "us" => 1e-3,
        "ms" => 1.0,
        "s" => 1_000.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        "d" => 86_400_000.0,
        other => return Err(format!("duration {text:?} has unknown unit {other:?} (use ms, s, m, h or d)")),
    };
    let ms = value * unit_ms;
    if !ms.is_finite() || ms > 1e15 {
        return Err(format!("duration {text:?} is too large"));
    }
    Ok(if ms > 0.0 && ms < 1.0 { 1 } else { ms.round() as u64 })
}

/// Parses an airlift `DataSize`: a number followed by `B`, `kB`, `MB`, `GB`, `TB` or `PB`
/// (binary multiples, as airlift uses them).
pub fn parse_data_size_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("data size {text:?} has no unit (use B, kB, MB, GB or TB)"))?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| format!("data size {text:?} does not start with a number"))?;
    let unit_bytes: f64 = match unit.trim() {
        "B" => 1.0,
        "kB" | "KB" => 1024.0,
        "MB" => 1024.0 * 1024.0,
        "GB" => 1024.0 * 1024.0 * 1024.0,
        "TB" => 1024.0f64.powi(4),
        "PB" => 1024.0f64.powi(5),
        other => return Err(format!("data size {text:?} has unknown unit {other:?} (use B, kB, MB, GB or TB)")),
    };
    let bytes = value * unit_bytes;
    if !bytes.is_finite() || bytes > 9.0e18 {
        return Err(format!("data size {text:?} is too large"));
    }
    Ok(bytes.round() as u64)
}

/// Formats a byte count the way Presto prints sizes in messages (`1GB`, `512MB`, `1.50GB`).
pub fn format_data_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value.fract() == 0.0 {
        format!("{}{}", value as u64, UNITS[unit])
    } else {
        format!("{value:.2}{}", UNITS[unit])
    }
}

/// Formats milliseconds the way Presto prints durations (`1.00s`, `250.00ms`, `2.00m`).
pub fn format_duration(duration_ms: u64) -> String {
    if duration_ms < 1_000 {
        format!("{duration_ms}.00ms")
    } else if duration_ms < 60_000 {
        format!("{:.2}s", duration_ms as f64 / 1_000.0)
    } else if duration_ms < 3_600_000 {
        format!("{:.2}m", duration_ms as f64 / 60_000.0)
    } else {
        format!("{:.2}h", duration_ms as f64 / 3_600_000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("100ms"), Ok(100));
        assert_eq!(parse_duration_ms("1.5s"), Ok(1_500));
        assert_eq!(parse_duration_ms("10m"), Ok(600_000));
        assert_eq!(parse_duration_ms(" 2h "), Ok(7_200_000));
        assert_eq!(parse_duration_ms("10us"), Ok(1));
        assert_eq!(parse_duration_ms("0s"), Ok(0));
        assert!(parse_duration_ms("10").unwrap_err().contains("no unit"));
        assert!(parse_duration_ms("10 parsecs").unwrap_err().contains("unknown unit"));
        assert!(parse_duration_ms("s").unwrap_err().contains("number"));
        assert!(parse_duration_ms("1.2.3s").is_err());
    }

    #[test]
    fn data_sizes() {
        assert_eq!(parse_data_size_bytes("8GB"), Ok(8 << 30));
        assert_eq!(parse_data_size_bytes("100MB"), Ok(100 << 20));
        assert_eq!(parse_data_size_bytes("1.5kB"), Ok(1536));
        assert_eq!(parse_data_size_bytes("7B"), Ok(7));
        assert!(parse_data_size_bytes("8").is_err());
        assert!(parse_data_size_bytes("8 furlongs").is_err());
        assert_eq!(format_data_size(8 << 30), "8GB");
        assert_eq!(format_data_size(1536), "1.50kB");
        assert_eq!(format_duration(1_500), "1.50s");
    }
}
