//! The importers' output: a BucketFTP config as a `toml_edit` document, written top to
//! bottom, with `#` comments wherever the conversion has something to say.
//!
//! `toml_edit` quotes the values and lays out the tables; the comments travel as decor: a
//! comment is held until the next key (its prefix) or table header (the prefix before the
//! blank line and the header) is written, and the ones left at the end close the document.
//! Each table gets the next document position, so `[[storage]]` and `[[user]]` tables come
//! out interleaved, in the order they were written.

use toml_edit::{ArrayOfTables, DocumentMut, Item, Key, Table, Value};

/// Comment lines are wrapped to this many columns.
pub(super) const WIDTH: usize = 96;

/// A config being written.
#[derive(Default)]
pub(super) struct TomlOut {
    doc: DocumentMut,
    /// The table being filled: its name, whether it is an element of an array of tables,
    /// and its contents (added to `doc` when the next table starts or at the end).
    open: Option<(String, bool, Table)>,
    /// `# ` lines not attached yet: they go before whatever is written next.
    pending: String,
    /// Whether anything was written yet (a table after something gets a blank line).
    started: bool,
    /// The next table's position in the document.
    position: isize,
}

impl TomlOut {
    /// `# text`, wrapped at [`WIDTH`] columns, control characters (not allowed in TOML
    /// comments) replaced.
    pub(super) fn comment(&mut self, text: &str) {
        for line in text.lines() {
            if line.chars().count() + 2 <= WIDTH {
                self.comment_line(line);
                continue;
            }
            let mut current = String::new();
            for word in line.split(' ') {
                if !current.is_empty() && current.chars().count() + word.chars().count() + 3 > WIDTH
                {
                    self.comment_line(&current);
                    current.clear();
                }
                if !current.is_empty() {
                    current.push(' ');
                }
                current.push_str(word);
            }
            self.comment_line(&current);
        }
    }

    /// `# key = "value"`: a setting the reader may uncomment, never wrapped.
    pub(super) fn commented(&mut self, key: &str, value: &str) {
        let value = Value::from(value);
        self.comment_line(&format!("{} = {value}", Key::new(key)));
    }

    /// Comments for keys that have no counterpart.
    pub(super) fn notes(&mut self, notes: &[String]) {
        for note in notes {
            self.comment(note);
        }
    }

    /// Starts `[name]`.
    pub(super) fn table(&mut self, name: &str) {
        self.open_table(name, false);
    }

    /// Starts one more `[[name]]`.
    pub(super) fn array_table(&mut self, name: &str) {
        self.open_table(name, true);
    }

    pub(super) fn string(&mut self, key: &str, value: &str) {
        self.set(key, Value::from(value));
    }

    pub(super) fn integer(&mut self, key: &str, value: i64) {
        self.set(key, Value::from(value));
    }

    pub(super) fn boolean(&mut self, key: &str, value: bool) {
        self.set(key, Value::from(value));
    }

    /// The TOML text.
    pub(super) fn finish(mut self) -> String {
        self.close_table();
        self.doc.set_trailing(std::mem::take(&mut self.pending));
        self.doc.to_string()
    }

    /// One `# line`; control characters, which TOML comments may not hold, become `?`.
    fn comment_line(&mut self, line: &str) {
        self.started = true;
        self.pending.push('#');
        if !line.is_empty() {
            self.pending.push(' ');
            self.pending.extend(
                line.chars()
                    .map(|c| if c.is_control() && c != '\t' { '?' } else { c }),
            );
        }
        self.pending.push('\n');
    }

    fn open_table(&mut self, name: &str, array: bool) {
        self.close_table();
        let mut table = Table::new();
        let mut prefix = std::mem::take(&mut self.pending);
        if self.started {
            prefix.push('\n');
        }
        table.decor_mut().set_prefix(prefix);
        table.set_position(Some(self.position));
        self.position += 1;
        self.started = true;
        self.open = Some((name.to_owned(), array, table));
    }

    fn close_table(&mut self) {
        let Some((name, array, table)) = self.open.take() else {
            return;
        };
        if !array {
            self.doc.insert(&name, Item::Table(table));
        } else if let Some(tables) = self
            .doc
            .entry(&name)
            .or_insert(Item::ArrayOfTables(ArrayOfTables::new()))
            .as_array_of_tables_mut()
        {
            tables.push(table);
        }
    }

    /// `key = value`, after the comments written since the last item.
    fn set(&mut self, key: &str, value: Value) {
        let mut key = Key::new(key);
        key.leaf_decor_mut()
            .set_prefix(std::mem::take(&mut self.pending));
        self.started = true;
        let table = match &mut self.open {
            Some((_, _, table)) => table,
            None => self.doc.as_table_mut(),
        };
        table.insert_formatted(&key, Item::Value(value));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn layout_and_comments() {
        let mut out = TomlOut::default();
        out.comment("Top.");
        out.table("server");
        out.comment("Why.");
        out.string("listen", "0.0.0.0:21");
        out.integer("max_sessions", 7);
        out.notes(&["A note.".into()]);
        for n in 0..2 {
            out.array_table("storage");
            out.string("name", &format!("s{n}"));
            out.array_table("user");
            out.comment("Bell\u{7} and tab\t.");
            out.boolean("delete", n == 0);
        }
        out.commented("endpoint", "http://a\"b");
        assert_eq!(
            out.finish(),
            "# Top.\n\n[server]\n# Why.\nlisten = \"0.0.0.0:21\"\nmax_sessions = 7\n\
             # A note.\n\n[[storage]]\nname = \"s0\"\n\n[[user]]\n# Bell? and tab\t.\n\
             delete = true\n\n[[storage]]\nname = \"s1\"\n\n[[user]]\n# Bell? and tab\t.\n\
             delete = false\n# endpoint = 'http://a\"b'\n"
        );
    }

    #[test]
    fn long_comments_wrap() {
        let mut out = TomlOut::default();
        let words = "word ".repeat(40);
        out.comment(words.trim_end());
        out.table("server");
        let text = out.finish();
        let lines: Vec<&str> = text.lines().filter(|l| l.starts_with('#')).collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines.iter().all(|l| l.chars().count() <= WIDTH), "{text}");
    }
}
