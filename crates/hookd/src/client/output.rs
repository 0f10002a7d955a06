//! Printing API answers: a readable table by default, JSON with `--json`.

use serde_json::Value;

/// A column: its header and the field of each row it shows.
pub type Column = (&'static str, &'static str);

/// Renders a value for a table cell: strings bare, null as `-`, others as JSON.
fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(text) => text.clone(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// Formats rows as aligned columns with a header line.
pub fn table(rows: &[Value], columns: &[Column]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            columns
                .iter()
                .map(|(_, field)| cell(&row[*field]))
                .collect()
        })
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, (header, _))| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .chain([header.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |values: Vec<String>| {
        values
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut out = vec![line(columns.iter().map(|(h, _)| h.to_string()).collect())];
    out.extend(cells.into_iter().map(line));
    out.join("\n")
}

/// Formats one object as `key: value` lines (nested objects as compact JSON).
pub fn record(value: &Value) -> String {
    match value.as_object() {
        Some(object) => {
            let width = object.keys().map(String::len).max().unwrap_or(0);
            object
                .iter()
                .map(|(k, v)| format!("{k:<width$}  {}", cell(v)))
                .collect::<Vec<_>>()
                .join("\n")
        }
        None => cell(value),
    }
}

/// Prints `value` as pretty JSON, or through `human` otherwise.
/// `1 delivery`, `2 deliveries`, `0 deliveries`: a count from the server with its noun.
pub fn count(n: &Value, one: &str, many: &str) -> String {
    match n.as_u64() {
        Some(1) => format!("1 {one}"),
        Some(n) => format!("{n} {many}"),
        None => format!("{} {many}", cell_text(n)),
    }
}

fn cell_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

pub fn print(json: bool, value: &Value, human: impl FnOnce(&Value) -> String) {
    match json {
        true => println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        ),
        false => println!("{}", human(value)),
    }
}

/// A page (`{"data": [...], "next_cursor": ...}`) as a table, with a hint for the next page.
pub fn page(value: &Value, columns: &[Column]) -> String {
    let rows = value["data"].as_array().cloned().unwrap_or_default();
    let mut text = table(&rows, columns);
    if let Some(cursor) = value["next_cursor"].as_str() {
        text.push_str(&format!("\n(more: --cursor {cursor})"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_agree_with_their_nouns() {
        let count = |n: Value| count(&n, "delivery", "deliveries");
        assert_eq!(count(serde_json::json!(1)), "1 delivery");
        assert_eq!(count(serde_json::json!(0)), "0 deliveries");
        assert_eq!(count(serde_json::json!(2)), "2 deliveries");
    }
    use serde_json::json;

    #[test]
    fn tables_align() {
        let rows = [
            json!({"id": "wh_1", "events": ["a", "b"], "active": true}),
            json!({"id": "wh_22", "events": [], "active": null}),
        ];
        let text = table(
            &rows,
            &[("ID", "id"), ("EVENTS", "events"), ("ACTIVE", "active")],
        );
        assert_eq!(
            text,
            "ID     EVENTS  ACTIVE\nwh_1   a,b     true\nwh_22          -"
        );
        assert_eq!(record(&json!({"a": 1, "bb": "x"})), "a   1\nbb  x");
    }
}
