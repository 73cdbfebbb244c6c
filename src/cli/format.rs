//! Result formats of `fireball cli`, as presto-cli prints them: ALIGNED (a table with a header
//! rule and a row count), CSV and TSV (no header, as presto-cli's defaults), JSON (one object per
//! line). Pure: values in, text out.

use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
#[clap(rename_all = "UPPER")]
pub enum OutputFormat {
    Aligned,
    Csv,
    Tsv,
    Json,
}

/// A value as text: strings bare, NULL as `NULL` (aligned) or empty (CSV/TSV).
fn text(value: &Value, null: &str) -> String {
    match value {
        Value::Null => null.to_string(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// The whole result as an aligned table (numbers right-aligned, like presto-cli).
pub fn aligned(names: &[String], rows: &[Vec<Value>]) -> String {
    let cells: Vec<Vec<String>> = rows.iter().map(|row| row.iter().map(|value| text(value, "NULL")).collect()).collect();
    let widths: Vec<usize> = names
        .iter()
        .enumerate()
        .map(|(index, name)| {
            cells.iter().filter_map(|row| row.get(index)).map(|cell| cell.chars().count()).chain([name.chars().count()]).max().unwrap_or(0)
        })
        .collect();
    let numeric: Vec<bool> =
        (0..names.len()).map(|index| rows.iter().all(|row| matches!(row.get(index), Some(Value::Number(_)) | Some(Value::Null) | None))).collect();
    let pad = |cell: &str, width: usize, right: bool| {
        let fill = " ".repeat(width.saturating_sub(cell.chars().count()));
        if right { format!("{fill}{cell}") } else { format!("{cell}{fill}") }
    };
    let mut out = String::new();
    let header: Vec<String> = names.iter().zip(&widths).map(|(name, width)| center(name, *width)).collect();
    out.push(' ');
    out.push_str(header.join(" | ").trim_end());
    out.push('\n');
    out.push_str(&widths.iter().map(|width| "-".repeat(width + 2)).collect::<Vec<_>>().join("+"));
    out.push('\n');
    for row in &cells {
        let line: Vec<String> =
            row.iter().enumerate().map(|(index, cell)| pad(cell, widths.get(index).copied().unwrap_or(0), numeric[index])).collect();
        out.push(' ');
        out.push_str(line.join(" | ").trim_end());
        out.push('\n');
    }
    out.push_str(&format!("({} row{})\n", rows.len(), if rows.len() == 1 { "" } else { "s" }));
    out
}

fn center(text: &str, width: usize) -> String {
    let free = width.saturating_sub(text.chars().count());
    format!("{}{}{}", " ".repeat(free / 2), text, " ".repeat(free - free / 2))
}

/// Rows as CSV lines (quoted always, as presto-cli's CSV does).
pub fn csv(rows: &[Vec<Value>]) -> String {
    rows.iter()
        .map(|row| row.iter().map(|value| format!("\"{}\"", text(value, "").replace('"', "\"\""))).collect::<Vec<_>>().join(",") + "\n")
        .collect()
}

/// Rows as TSV lines (tabs, newlines and backslashes escaped).
pub fn tsv(rows: &[Vec<Value>]) -> String {
    let escape = |cell: String| cell.replace('\\', "\\\\").replace('\t', "\\t").replace('\n', "\\n");
    rows.iter().map(|row| row.iter().map(|value| escape(text(value, ""))).collect::<Vec<_>>().join("\t") + "\n").collect()
}

/// Rows as JSON objects, one per line.
pub fn json(names: &[String], rows: &[Vec<Value>]) -> String {
    rows.iter()
        .map(|row| {
            let object: serde_json::Map<String, Value> = names.iter().cloned().zip(row.iter().cloned()).collect();
            Value::Object(object).to_string() + "\n"
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn aligned_tables_pad_text_left_and_numbers_right() {
        let names = vec!["name".to_string(), "n".to_string()];
        let rows = vec![vec![json!("ALGERIA"), json!(0)], vec![json!("ARGENTINA"), json!(1234)], vec![Value::Null, Value::Null]];
        let table = aligned(&names, &rows);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "   name    |  n");
        assert_eq!(lines[1], "-----------+------");
        assert_eq!(lines[2], " ALGERIA   |    0");
        assert_eq!(lines[3], " ARGENTINA | 1234");
        assert_eq!(lines[4], " NULL      | NULL");
        assert_eq!(lines[5], "(3 rows)");
    }

    #[test]
    fn csv_tsv_and_json_escape_what_they_must() {
        let rows = vec![vec![json!("a\"b"), json!(1.5), Value::Null]];
        assert_eq!(csv(&rows), "\"a\"\"b\",\"1.5\",\"\"\n");
        assert_eq!(tsv(&[vec![json!("x\ty"), json!(2)]]), "x\\ty\t2\n");
        assert_eq!(json(&["k".to_string()], &[vec![json!(7)]]), "{\"k\":7}\n");
    }
}
