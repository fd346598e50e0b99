//! The window's banner messages ([`Notice`]: a translation key plus arguments) and opening
//! the window. Facts reported by the stores (a corrupt file kept aside) and failures of
//! background work (local bucket, FTPS, a tray export) become notices here, and only here.

use std::collections::BTreeMap;
use std::path::Path;

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

    /// What moving the local bucket from `old` to `new` at start came to, when the person
    /// should know: it moved, it could not move, or an older copy is left behind.
    pub fn relocated(r: &gateway::s3::local::Relocated, old: &Path, new: &Path) -> Option<Self> {
        use gateway::s3::local::Relocation;
        let (old, new) = (old.display().to_string(), new.display().to_string());
        match &r.how {
            Relocation::Nothing => None,
            Relocation::Moved => Some(Self::new(
                "notice.local_moved",
                &[("old", old), ("new", new)],
            )),
            Relocation::BothExist => Some(Self::new(
                "notice.local_old_copy",
                &[("old", old), ("new", new)],
            )),
            Relocation::KeptOld(detail) => Some(Self::new(
                "notice.local_not_moved",
                &[("old", old), ("new", new), ("detail", detail.clone())],
            )),
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

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use std::path::PathBuf;

    use gateway::s3::local::{Relocated, Relocation};

    use super::*;

    #[test]
    fn relocation_notices_name_both_folders() {
        let old = PathBuf::from("C:/Users/a/AppData/Roaming/BucketFTP/data/local-store");
        let new = PathBuf::from("C:/Users/a/AppData/Local/BucketFTP/data/local-store");
        let at = |how| Relocated {
            folder: new.clone(),
            how,
        };
        assert_eq!(
            Notice::relocated(&at(Relocation::Nothing), &old, &new),
            None
        );
        let moved = Notice::relocated(&at(Relocation::Moved), &old, &new).unwrap();
        assert_eq!(moved.key, "notice.local_moved");
        assert_eq!(moved.args["new"], new.display().to_string());
        let both = Notice::relocated(&at(Relocation::BothExist), &old, &new).unwrap();
        assert_eq!(both.key, "notice.local_old_copy");
        assert_eq!(both.args["old"], old.display().to_string());
        let kept = Relocation::KeptOld("in use".into());
        let kept = Notice::relocated(&at(kept), &old, &new).unwrap();
        assert_eq!(kept.key, "notice.local_not_moved");
        assert_eq!(kept.args["detail"], "in use");
    }
}
