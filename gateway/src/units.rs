//! Sizes as people read them: a leaf, importing nothing of the crate, used by the storage
//! parts' messages and the config (which reads them back with `config::parse_size`).

/// A byte count as people read it, to one decimal: `21474836480` → `20 GiB`, `1536` →
/// `1.5 KiB`, `100` → `100 bytes`. [`parse_size`](crate::config::parse_size) reads it back; it is exact when no
/// decimal was rounded (the importers write a size setting this way only then). Pure.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    let text = format!("{value:.1}");
    let text = text.strip_suffix(".0").unwrap_or(&text);
    format!("{text} {}", UNITS[unit])
}
