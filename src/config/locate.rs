//! Where a key sits in a fleet file, so an error about a value that parsed
//! but makes no sense (`ramp = 1e-300`, `[[group]] count = 30`) can name
//! its line like a syntax error does.

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// The 1-based line of `key` in `text`. Keys are written as in errors:
/// `ramp`, `mock.asr_workers`, `group[1].weight`, `stages[2]`. When the key
/// itself is absent (a default), the line of the nearest enclosing entry
/// that is present; `None` when not even its first part is in the file.
pub fn key_line(text: &str, key: &str) -> Option<usize> {
    let root = DeTable::parse(text).ok()?;
    let mut table: &DeTable<'_> = root.get_ref();
    let mut found: Option<usize> = None;
    for segment in key.split('.') {
        let (name, index) = match segment.split_once('[') {
            Some((name, rest)) => (name, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (segment, None),
        };
        let Some((k, v)) = table.iter().find(|(k, _)| k.get_ref().as_ref() == name) else {
            break;
        };
        found = Some(k.span().start);
        let mut value: &Spanned<DeValue<'_>> = v;
        if let Some(i) = index {
            let DeValue::Array(items) = value.get_ref() else { break };
            let Some(item) = items.get(i) else { break };
            found = Some(item.span().start);
            value = item;
        }
        match value.get_ref() {
            DeValue::Table(t) => table = t,
            _ => break,
        }
    }
    found.map(|offset| line_of(text, offset))
}

/// The key, written as in errors (`shape`, `mock.downlink`,
/// `group[1].mode`), whose value holds byte `offset` of `text`.
pub fn key_at(text: &str, offset: usize) -> Option<String> {
    let root = DeTable::parse(text).ok()?;
    key_in_table(root.get_ref(), offset, "")
}

fn key_in_table(table: &DeTable<'_>, offset: usize, prefix: &str) -> Option<String> {
    table.iter().find_map(|(k, v)| {
        let name = k.get_ref().as_ref();
        let key = if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}.{name}")
        };
        key_in_value(v, offset, &key)
    })
}

fn key_in_value(value: &Spanned<DeValue<'_>>, offset: usize, key: &str) -> Option<String> {
    match value.get_ref() {
        DeValue::Table(t) => key_in_table(t, offset, key),
        DeValue::Array(items) => {
            (items.iter().enumerate()).find_map(|(i, item)| key_in_value(item, offset, &format!("{key}[{i}]")))
        }
        _ => value.span().contains(&offset).then(|| key.to_string()),
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "devices = 10\nramp = 1e-300\n\n[mock]\nasr_workers = 3\n\n[[group]]\ncount = 4\n\n[[group]]\nname = \"b\"\nweight = 0.3\n";

    #[test]
    fn finds_top_level_nested_and_array_keys() {
        assert_eq!(key_line(TEXT, "ramp"), Some(2));
        assert_eq!(key_line(TEXT, "mock.asr_workers"), Some(5));
        assert_eq!(key_line(TEXT, "group[0].count"), Some(8));
        assert_eq!(key_line(TEXT, "group[1].weight"), Some(12));
    }

    #[test]
    fn absent_key_falls_back_to_its_table() {
        assert_eq!(key_line(TEXT, "mock.llm_workers"), Some(4));
        assert_eq!(key_line(TEXT, "seed"), None);
    }
}
