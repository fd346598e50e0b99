//! What the tray shows, as plain data ([`TrayState`]) for the pure menu model in
//! [`crate::tray::menu`].

use super::Core;
use crate::tray::{TrayProfile, TrayState};

impl Core {
    /// The server's state and the profiles (names in the current language) for the tray.
    pub fn tray_state(&self) -> TrayState {
        TrayState {
            server: self.status(),
            profiles: self
                .profiles()
                .into_iter()
                .map(|v| TrayProfile {
                    name: self.display_name(&v.profile),
                    has_login: v.has_login(),
                    id: v.profile.id,
                    user: v.user,
                })
                .collect(),
        }
    }
}
