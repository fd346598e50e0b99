//! [`FieldError`]: the one way a form field is reported wrong, by the Profiles form
//! ([`crate::profiles::ProfileInput::to_profile`]) and by Settings
//! ([`crate::settings::Settings::validate`]). The actions layer passes it to the window as
//! `ActionError::Invalid`, which marks the field and shows the message of `key`.

/// A form field that cannot be used: which one, the translation key of the message (see
/// `ui/locales`) and the same in English (logs, and the window's fallback).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {detail}")]
pub struct FieldError {
    /// The field at fault, as the form names it (`listen_port`, `access_key`, …).
    pub field: &'static str,
    /// Translation key of the message (`err.*`).
    pub key: &'static str,
    /// The message in English.
    pub detail: String,
}

/// A [`FieldError`] for `field`. Pure.
pub fn invalid(field: &'static str, key: &'static str, detail: impl Into<String>) -> FieldError {
    FieldError {
        field,
        key,
        detail: detail.into(),
    }
}
