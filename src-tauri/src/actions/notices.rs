//! The window's banner messages ([`Notice`]: a translation key plus arguments) and opening
//! the window. Facts reported by the stores (a corrupt file kept aside) and failures of
//! background work (local bucket, FTPS, a tray export) become notices here, and only here.

use std::collections::BTreeMap;

use serde::Serialize;

use super::Core;
use super::core::lock;
use crate::persist::Corrupt;

/// A message for the window's banner: a translation key plus arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notice {
    /// Translation key (`notice.*`).
    pub key: &'static str,
    /// Placeholder values.
    pub args: BTreeMap<&'static str, String>,
}

impl Notice {
    pub(super) fn new(key: &'static str, args: &[(&'static str, String)]) -> Self {
        Self {
            key,
            args: args.iter().cloned().collect(),
        }
    }

    /// A settings or profiles file that did not parse and was kept aside.
    pub fn corrupt(c: &Corrupt) -> Self {
        Self::new(
            "notice.corrupt",
            &[
                ("file", c.path.display().to_string()),
                ("kept", c.kept_at.display().to_string()),
                ("reason", c.error.to_string()),
            ],
        )
    }
}

impl Core {
    /// Messages for the banner (corrupt files moved aside, local bucket or FTPS problems).
    pub fn notices(&self) -> Vec<Notice> {
        lock(&self.notices).clone()
    }

    /// Removes the banner message at `index`.
    pub fn dismiss_notice(&self, index: usize) {
        let mut n = lock(&self.notices);
        if index < n.len() {
            n.remove(index);
        }
    }

    /// Shows the window.
    pub fn open_window(&self) {
        self.shell.show_window();
    }
}
