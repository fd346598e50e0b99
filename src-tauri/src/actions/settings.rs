//! Saving settings: validation, "start at login" through the shell, and a restart of the
//! running server when a server setting changed.

use serde::Serialize;

use super::{ActionError, Core};
use crate::form::invalid;
use crate::settings::{SaveError, Settings};

/// Result of saving settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SettingsSaved {
    /// The saved settings.
    pub settings: Settings,
    /// True when the running server restarted to apply them.
    pub restarted: bool,
}

impl Core {
    /// The settings.
    pub fn settings(&self) -> Settings {
        self.settings.get()
    }

    /// Validates and saves settings; applies "start at login" and restarts a running server
    /// when a server setting changed.
    pub async fn save_settings(&self, new: Settings) -> Result<SettingsSaved, ActionError> {
        new.validate().map_err(SaveError::Invalid)?;
        if self.profiles.get(&new.default_profile).is_none() {
            return Err(invalid(
                "default_profile",
                "err.default_profile",
                format!("no profile {:?}", new.default_profile),
            )
            .into());
        }
        let old = self.settings.get();
        if new.start_at_login != old.start_at_login {
            self.shell
                .set_start_at_login(new.start_at_login)
                .map_err(ActionError::Autostart)?;
        }
        self.settings.save(new.clone())?;
        self.shell.settings_changed(&new);
        let mut restarted = false;
        if self.server.is_running() && old.server_differs(&new) {
            self.stop_server().await;
            self.start_server().await?;
            restarted = true;
        }
        Ok(SettingsSaved {
            settings: new,
            restarted,
        })
    }
}
