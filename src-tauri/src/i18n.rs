//! Languages: English, 简体中文 and 日本語. One string table per language in `ui/locales/`
//! (compiled in here, and served to the web UI by the `strings` command), so the tray menu
//! and the window share every translation. The default comes from the OS locale.

use std::collections::HashMap;

use serde::Serialize;

/// A supported language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Lang {
    /// English.
    #[serde(rename = "en")]
    En,
    /// Simplified Chinese.
    #[serde(rename = "zh-CN")]
    Zh,
    /// Japanese.
    #[serde(rename = "ja")]
    Ja,
}

impl Lang {
    /// Every language, in menu order.
    pub const ALL: [Lang; 3] = [Lang::En, Lang::Zh, Lang::Ja];

    /// The code used in settings and file names.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh-CN",
            Lang::Ja => "ja",
        }
    }

    /// The language's own name.
    pub fn native_name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::Zh => "简体中文",
            Lang::Ja => "日本語",
        }
    }

    /// The language of a settings code; `None` for `auto` or unknown codes.
    pub fn from_code(code: &str) -> Option<Lang> {
        Lang::ALL.into_iter().find(|l| l.code() == code)
    }

    /// The best language for an OS locale such as `zh_CN.UTF-8`, `ja-JP` or `en-US`.
    pub fn from_locale(locale: Option<&str>) -> Lang {
        let l = locale.unwrap_or("").to_ascii_lowercase();
        if l.starts_with("zh") {
            Lang::Zh
        } else if l.starts_with("ja") {
            Lang::Ja
        } else {
            Lang::En
        }
    }

    /// The language a `language` setting means, given the OS locale.
    pub fn resolve(setting: &str, os_locale: Option<&str>) -> Lang {
        Lang::from_code(setting).unwrap_or_else(|| Lang::from_locale(os_locale))
    }
}

/// The string tables.
#[derive(Debug, Clone)]
pub struct Catalog {
    tables: HashMap<Lang, HashMap<String, String>>,
}

/// A table that did not parse (a build-time mistake; the tests catch it).
#[derive(Debug, thiserror::Error)]
#[error("string table {lang}: {source}")]
pub struct CatalogError {
    lang: &'static str,
    source: serde_json::Error,
}

impl Catalog {
    /// Parses the compiled-in tables.
    pub fn load() -> Result<Self, CatalogError> {
        let sources = [
            (Lang::En, include_str!("../../ui/locales/en.json")),
            (Lang::Zh, include_str!("../../ui/locales/zh-CN.json")),
            (Lang::Ja, include_str!("../../ui/locales/ja.json")),
        ];
        let mut tables = HashMap::new();
        for (lang, text) in sources {
            let table = serde_json::from_str(text).map_err(|source| CatalogError {
                lang: lang.code(),
                source,
            })?;
            tables.insert(lang, table);
        }
        Ok(Self { tables })
    }

    /// The whole table of `lang`, English filling any gap.
    pub fn table(&self, lang: Lang) -> HashMap<String, String> {
        let mut out = self.tables.get(&Lang::En).cloned().unwrap_or_default();
        if let Some(t) = self.tables.get(&lang) {
            out.extend(t.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        out
    }

    /// The string `key` in `lang` with `{name}` placeholders filled from `args`.
    pub fn t(&self, lang: Lang, key: &str, args: &[(&str, &str)]) -> String {
        let template = self
            .tables
            .get(&lang)
            .and_then(|t| t.get(key))
            .or_else(|| self.tables.get(&Lang::En).and_then(|t| t.get(key)))
            .map(String::as_str)
            .unwrap_or(key);
        fill(template, args)
    }
}

/// Replaces `{name}` with its value, once per placeholder (values are not re-scanned).
pub fn fill(template: &str, args: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                let name = &after[..close];
                match args.iter().find(|(k, _)| *k == name) {
                    Some((_, v)) => out.push_str(v),
                    None => {
                        out.push('{');
                        out.push_str(name);
                        out.push('}');
                    }
                }
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locale_detection() {
        let table = [
            (Some("zh_CN.UTF-8"), Lang::Zh),
            (Some("zh-Hans-CN"), Lang::Zh),
            (Some("zh-TW"), Lang::Zh),
            (Some("ja-JP"), Lang::Ja),
            (Some("ja"), Lang::Ja),
            (Some("en-US"), Lang::En),
            (Some("de-DE"), Lang::En),
            (Some("C"), Lang::En),
            (None, Lang::En),
        ];
        for (locale, lang) in table {
            assert_eq!(Lang::from_locale(locale), lang, "{locale:?}");
        }
        assert_eq!(Lang::resolve("auto", Some("ja_JP")), Lang::Ja);
        assert_eq!(Lang::resolve("zh-CN", Some("ja_JP")), Lang::Zh);
        assert_eq!(Lang::resolve("en", Some("zh_CN")), Lang::En);
    }

    #[test]
    fn every_language_has_every_string_with_the_same_placeholders() {
        let c = Catalog::load().unwrap();
        let en = &c.tables[&Lang::En];
        let placeholders = |s: &str| {
            let mut v: Vec<String> = s
                .split('{')
                .skip(1)
                .filter_map(|p| p.split_once('}').map(|(n, _)| n.to_owned()))
                .collect();
            v.sort();
            v
        };
        for lang in [Lang::Zh, Lang::Ja] {
            let t = &c.tables[&lang];
            for (k, v) in en {
                let other = t
                    .get(k)
                    .unwrap_or_else(|| panic!("{} lacks {k}", lang.code()));
                assert!(!other.trim().is_empty(), "{} {k} is empty", lang.code());
                assert_eq!(placeholders(v), placeholders(other), "{} {k}", lang.code());
            }
            assert_eq!(t.len(), en.len(), "{} has extra keys", lang.code());
        }
    }

    #[test]
    fn translation_and_fill() {
        let c = Catalog::load().unwrap();
        assert_eq!(c.t(Lang::Zh, "tray.quit", &[]), "退出");
        assert_eq!(c.t(Lang::Ja, "tray.quit", &[]), "終了");
        assert_eq!(
            c.t(Lang::En, "status.running", &[("address", "127.0.0.1:2048")]),
            "Running on 127.0.0.1:2048"
        );
        assert_eq!(c.t(Lang::En, "no.such.key", &[]), "no.such.key");
        assert_eq!(fill("{a}{b}{a}", &[("a", "{b}"), ("b", "x")]), "{b}x{b}");
        assert_eq!(fill("open { end", &[]), "open { end");
    }
}
