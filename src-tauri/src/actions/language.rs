//! The language in effect, strings in it, and the window's string table.

use serde::Serialize;

use super::Core;
use crate::i18n::Lang;
use crate::profiles::Profile;

/// The window's string table.
#[derive(Debug, Clone, Serialize)]
pub struct StringsView {
    /// Language code in effect.
    pub lang: Lang,
    /// Key → text.
    pub strings: std::collections::HashMap<String, String>,
    /// Languages offered: code and own name.
    pub languages: Vec<(Lang, &'static str)>,
    /// "Version 0.1.0" in this language (Settings shows it).
    pub version: String,
}

impl Core {
    /// The language in effect.
    pub fn language(&self) -> Lang {
        Lang::resolve(&self.settings.get().language, self.os_locale.as_deref())
    }

    /// A string in the current language.
    pub fn t(&self, key: &str, args: &[(&str, &str)]) -> String {
        self.catalog.t(self.language(), key, args)
    }

    /// The window's strings in `lang` (default: the language in effect).
    pub fn strings(&self, lang: Option<&str>) -> StringsView {
        let lang = lang
            .and_then(Lang::from_code)
            .unwrap_or_else(|| self.language());
        StringsView {
            lang,
            strings: self.catalog.table(lang),
            languages: Lang::ALL.iter().map(|l| (*l, l.native_name())).collect(),
            version: self
                .catalog
                .t(lang, "settings.version", &[("version", crate::VERSION)]),
        }
    }

    /// The display name of a profile in the current language.
    pub fn display_name(&self, p: &Profile) -> String {
        if p.local {
            self.t("profile.local_name", &[])
        } else {
            p.name.clone()
        }
    }
}
