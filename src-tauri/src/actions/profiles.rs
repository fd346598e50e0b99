//! The Profiles list and form: views with the local bucket's key filled in, add / edit /
//! delete (secrets to and from the keychain), the provider presets.

use gateway::Provider;
use serde::Serialize;

use super::{ActionError, Core};
use crate::profiles::{LOCAL_PROFILE_ID, Profile, ProfileInput};
use crate::settings::Settings;

/// A profile as the Profiles list shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProfileView {
    /// The saved profile (for "This computer": with the local key filled in).
    #[serde(flatten)]
    pub profile: Profile,
    /// True when the keychain (or, for the local bucket, its credential file) has a secret.
    pub has_secret: bool,
    /// The FileZilla user `AK/bucket`.
    pub user: String,
    /// The local bucket's folder.
    pub folder: Option<String>,
}

/// A provider preset for the Profiles form.
#[derive(Debug, Clone, Serialize)]
pub struct PresetView {
    /// `aws`, `oss`, …
    pub id: Provider,
    /// English name (the window shows `provider.<id>` translated).
    pub label: &'static str,
    /// Endpoint with `{region}`; `None` when the SDK knows it or the user must give it.
    pub endpoint_template: Option<&'static str>,
    /// Region used when none is chosen.
    pub default_region: &'static str,
    /// Regions offered.
    pub regions: Vec<&'static str>,
    /// Preferred addressing.
    pub addressing: gateway::Addressing,
    /// True when the user must give the endpoint.
    pub endpoint_required: bool,
}

impl ProfileView {
    /// True when the profile has an access key and a default bucket, so a FileZilla login
    /// `AK/bucket` can be made of it (tray "Copy FileZilla login", the site export).
    pub fn has_login(&self) -> bool {
        !self.profile.access_key.is_empty() && !self.profile.bucket.is_empty()
    }
}

impl Core {
    pub(super) fn view(&self, p: Profile) -> ProfileView {
        if p.local {
            let mut profile = p;
            let (has_secret, folder) = match &self.local_login {
                Some(l) => {
                    profile.access_key = l.access_key.clone();
                    profile.endpoint = l.settings.endpoint.clone();
                    profile.region = l.settings.region.clone();
                    (true, Some(l.folder.display().to_string()))
                }
                None => (false, None),
            };
            let user = format!("{}/{}", profile.access_key, profile.bucket);
            return ProfileView {
                profile,
                has_secret,
                user,
                folder,
            };
        }
        let has_secret = matches!(self.secrets.get(&p.id), Ok(Some(_)));
        let user = format!("{}/{}", p.access_key, p.bucket);
        ProfileView {
            profile: p,
            has_secret,
            user,
            folder: None,
        }
    }

    /// Every profile, "This computer" first.
    pub fn profiles(&self) -> Vec<ProfileView> {
        self.profiles
            .all()
            .into_iter()
            .map(|p| self.view(p))
            .collect()
    }

    /// Adds (empty `id`) or edits a profile; a non-empty secret goes to the keychain.
    pub fn save_profile(&self, input: ProfileInput) -> Result<ProfileView, ActionError> {
        let is_new = input.id.trim().is_empty();
        let id = if is_new {
            self.profiles.new_id()
        } else {
            let existing = self
                .profiles
                .get(&input.id)
                .ok_or_else(|| ActionError::NoProfile(input.id.clone()))?;
            if existing.local {
                return Err(ActionError::Builtin);
            }
            existing.id
        };
        let profile = input.to_profile(&id)?;
        let secret = input.secret.trim();
        if is_new && secret.is_empty() {
            return Err(ActionError::SecretRequired);
        }
        if !secret.is_empty() {
            self.secrets.set(&id, secret)?;
        }
        if let Err(e) = self.profiles.put(profile.clone()) {
            if is_new {
                let _ = self.secrets.delete(&id);
            }
            return Err(e.into());
        }
        self.shell.profiles_changed();
        Ok(self.view(profile))
    }

    /// Deletes a profile and its secret.
    pub fn delete_profile(&self, id: &str) -> Result<(), ActionError> {
        let p = self
            .profiles
            .get(id)
            .ok_or_else(|| ActionError::NoProfile(id.to_owned()))?;
        if p.local {
            return Err(ActionError::Builtin);
        }
        self.secrets.delete(id)?;
        self.profiles.remove(id)?;
        let s = self.settings.get();
        if s.default_profile == id {
            self.settings.save(Settings {
                default_profile: LOCAL_PROFILE_ID.into(),
                ..s
            })?;
        }
        self.shell.profiles_changed();
        Ok(())
    }

    /// The provider presets, in menu order.
    pub fn presets(&self) -> Vec<PresetView> {
        Provider::ALL
            .iter()
            .map(|p| {
                let pre = p.preset();
                PresetView {
                    id: *p,
                    label: pre.label,
                    endpoint_template: pre.endpoint_template,
                    default_region: pre.default_region,
                    regions: pre.regions.to_vec(),
                    addressing: pre.addressing,
                    endpoint_required: pre.endpoint_required,
                }
            })
            .collect()
    }

    pub(super) fn secret_of(&self, id: &str) -> Result<Option<String>, ActionError> {
        let p = self
            .profiles
            .get(id)
            .ok_or_else(|| ActionError::NoProfile(id.to_owned()))?;
        if p.local {
            return match &self.local_login {
                Some(l) => Ok(Some(l.secret_key.clone())),
                None => Err(ActionError::LocalUnavailable(
                    "the local bucket did not start".into(),
                )),
            };
        }
        Ok(self.secrets.get(id)?)
    }
}
