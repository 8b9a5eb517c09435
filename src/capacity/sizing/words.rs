//! Number formatting shared by the operator wording (`text` and
//! `text_scaling`).

/// Up to two decimals, trailing zeros dropped: 7.5 → "7.5", 4.0 → "4".
pub(super) fn num(v: f64) -> String {
    let text = format!("{v:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}
