//! The INI dialect of Python's `ConfigParser`, as COS FTP Server reads `conf/vsftpd.conf`:
//! `[section]` headers, `key = value` or `key: value`, keys folded to lowercase, section
//! names as written, full-line comments starting with `#` or `;`, indented lines continuing
//! the previous value, `""` for an empty value, no `%(name)s` interpolation. A value ends at
//! ` ;` (as in Python 2) and, except for the keys the caller names verbatim (passwords and
//! secrets, which must stay exactly what the server accepted), at ` #` (the README's examples
//! put comments there). Duplicate sections and keys are errors. Every section and key keeps
//! its line number, which the importer's errors and comments quote.
//!
//! Hand-written, because the crates checked read this dialect differently (tried on the
//! importer's test lines):
//! - `configparser` 3.3: cuts a value at the first `;` or `#` even with no space before it,
//!   for every key alike (`ftp_login_user_password = Audit#2024 ; …` reads `Audit`, and
//!   `pa;ss` would read `pa`); a repeated key or section silently replaces or merges
//!   (`LISTEN_PORT = 1` then `listen_port = 2` reads 2, no error); keeps no line numbers.
//! - `rust-ini` 0.21: inline comments are a compile-time feature for all keys (no verbatim
//!   passwords), and without it `Audit#2024 ; …` keeps the comment; a `\` at the end of a line
//!   joins the next line even with escapes off (`a\` + `b = c` reads `ab = c`); an indented
//!   `# comment` inside a continued value becomes part of the value; a repeated key is kept
//!   as a second value; keeps no line numbers.

use super::ImportError;

/// One `[section]` of the INI file.
#[derive(Debug)]
pub(super) struct Section {
    /// As written (`ConfigParser` does not fold section names).
    pub(super) name: String,
    /// The header's 1-based line.
    pub(super) line: usize,
    /// In file order.
    pub(super) entries: Vec<Entry>,
}

/// One `key = value` line (with its continuation lines).
#[derive(Debug)]
pub(super) struct Entry {
    /// Lowercase, as `ConfigParser` folds option names.
    pub(super) key: String,
    /// Trimmed, inline comment removed.
    pub(super) value: String,
    /// The key's 1-based line.
    pub(super) line: usize,
    /// Text after ` ;` was dropped as a comment.
    pub(super) inline_comment: bool,
}

impl Section {
    /// The entry for `key` when its value is not empty.
    pub(super) fn value(&self, key: &str) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|e| e.key == key)
            .filter(|e| !e.value.is_empty())
    }
}

/// Parses `text` (see the module doc); the values of `verbatim` keys end only at ` ;`.
pub(super) fn parse(text: &str, verbatim: &[&str]) -> Result<Vec<Section>, ImportError> {
    let mut sections: Vec<Section> = Vec::new();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        // Indented: continues the previous value (a section header still starts a section).
        if raw.starts_with(char::is_whitespace)
            && !trimmed.starts_with('[')
            && let Some(entry) = sections.last_mut().and_then(|s| s.entries.last_mut())
        {
            let more = strip_inline_comment(trimmed, verbatim.contains(&entry.key.as_str())).0;
            if !more.is_empty() {
                entry.value.push('\n');
                entry.value.push_str(&more);
            }
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix('[') {
            let Some((name, _)) = rest.split_once(']') else {
                return Err(ImportError::Syntax {
                    line,
                    message: "a section header without `]`".into(),
                });
            };
            if name.is_empty() {
                return Err(ImportError::Syntax {
                    line,
                    message: "a section header without a name".into(),
                });
            }
            if let Some(first) = sections.iter().find(|s| s.name == name) {
                return Err(ImportError::Duplicate {
                    line,
                    first: first.line,
                    what: format!("section [{name}]"),
                });
            }
            sections.push(Section {
                name: name.to_owned(),
                line,
                entries: Vec::new(),
            });
            continue;
        }
        let Some(at) = trimmed.find(['=', ':']) else {
            return Err(ImportError::Syntax {
                line,
                message: "expected `[section]`, `key = value` or a comment".into(),
            });
        };
        let key = trimmed[..at].trim().to_lowercase();
        if key.is_empty() {
            return Err(ImportError::Syntax {
                line,
                message: "a value without a key".into(),
            });
        }
        let Some(section) = sections.last_mut() else {
            return Err(ImportError::Syntax {
                line,
                message: format!("`{key}` comes before any [section]"),
            });
        };
        if let Some(first) = section.entries.iter().find(|e| e.key == key) {
            return Err(ImportError::Duplicate {
                line,
                first: first.line,
                what: format!("[{}] `{key}`", section.name),
            });
        }
        let (mut value, inline_comment) =
            strip_inline_comment(trimmed[at + 1..].trim(), verbatim.contains(&key.as_str()));
        if value == "\"\"" {
            value.clear();
        }
        section.entries.push(Entry {
            key,
            value,
            line,
            inline_comment,
        });
    }
    Ok(sections)
}

/// Cuts `value` at an inline comment: ` ;`, and ` #` unless the key is `verbatim`. A value
/// that starts with `#` or `;` is all comment, except for verbatim keys.
fn strip_inline_comment(value: &str, verbatim: bool) -> (String, bool) {
    let is_mark = |c: char| c == ';' || (c == '#' && !verbatim);
    if !verbatim && value.starts_with(is_mark) {
        return (String::new(), true);
    }
    let mut prev_space = false;
    for (i, c) in value.char_indices() {
        if prev_space && is_mark(c) {
            return (value[..i].trim_end().to_owned(), true);
        }
        prev_space = c.is_whitespace();
    }
    (value.to_owned(), false)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn comments_and_continuations() {
        let ini = parse(
            "\u{feff}; top\n[S]\nA = 1 ; note\nb: x # note\nc = \"\"\nd = one\n  two\n   # not more\ne = #all comment\n",
            &[],
        )
        .unwrap();
        let values: Vec<(&str, &str)> = ini[0]
            .entries
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str()))
            .collect();
        assert_eq!(
            values,
            [
                ("a", "1"),
                ("b", "x"),
                ("c", ""),
                ("d", "one\ntwo"),
                ("e", "")
            ]
        );
        assert_eq!(ini[0].entries[0].line, 3);
        assert_eq!(
            strip_inline_comment("pa ss #1 ;x", true),
            ("pa ss #1".into(), true)
        );
        let ini = parse("[S]\npassword = #secret # not a comment\n", &["password"]).unwrap();
        assert_eq!(ini[0].entries[0].value, "#secret # not a comment");
    }
}
