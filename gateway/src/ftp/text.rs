//! A leaf of the FTP side, importing nothing of the crate: the MLST fact selection and
//! one-line reply text, which the relay (writing replies), the control tap (keeping the
//! selection and the reason for the next error) and the storage backend (writing listings)
//! share. Kept apart so that the tap and the backend need nothing of the relay.

/// Text safe to put on one reply line.
pub fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

/// The MLST facts this server can give, as a set (RFC 3659 §7.5: type, size, modify).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts(u8);

impl Facts {
    /// `type`.
    pub const TYPE: Facts = Facts(1);
    /// `size`.
    pub const SIZE: Facts = Facts(2);
    /// `modify`.
    pub const MODIFY: Facts = Facts(4);
    /// All three, the default.
    pub const ALL: Facts = Facts(7);
    const NAMES: [(&'static str, Facts); 3] = [
        ("type", Facts::TYPE),
        ("size", Facts::SIZE),
        ("modify", Facts::MODIFY),
    ];

    /// The raw set.
    pub fn bits(self) -> u8 {
        self.0
    }

    /// A set from [`bits`](Self::bits); unknown bits are dropped.
    pub fn from_bits(bits: u8) -> Self {
        Facts(bits & Facts::ALL.0)
    }

    /// True when `other` is in the set.
    pub fn contains(self, other: Facts) -> bool {
        self.0 & other.0 == other.0
    }

    /// The selection asked for by `OPTS MLST fact;fact;…`: facts this server does not know
    /// are ignored, as RFC 3659 §7.9 says. `type` and `size` stay in: libunftp writes them
    /// into every MLSD line, so the reply says they are in use.
    pub fn parse_selection(list: &str) -> Facts {
        let mut bits = Facts::TYPE.0 | Facts::SIZE.0;
        for name in list.split(';').map(str::trim) {
            for (known, fact) in Facts::NAMES {
                if name.eq_ignore_ascii_case(known) {
                    bits |= fact.0;
                }
            }
        }
        Facts(bits)
    }

    /// `type;size;modify;` for the facts in the set, as the `200` reply lists them.
    pub fn list(self) -> String {
        Facts::NAMES
            .iter()
            .filter(|(_, f)| self.contains(*f))
            .map(|(n, _)| format!("{n};"))
            .collect()
    }

    /// The FEAT line: every fact offered, `*` on those selected (RFC 3659 §7.8).
    pub fn feat_line(self) -> String {
        let facts: String = Facts::NAMES
            .iter()
            .map(|(n, f)| {
                if self.contains(*f) {
                    format!("{n}*;")
                } else {
                    format!("{n};")
                }
            })
            .collect();
        format!(" MLST {facts}")
    }

    /// Keeps only the selected facts of a `fact=value;fact=value;` string.
    pub fn filter(self, facts: &str) -> String {
        facts
            .split(';')
            .filter(|f| !f.is_empty())
            .filter(|f| {
                let name = f.split_once('=').map_or(*f, |(n, _)| n);
                Facts::NAMES
                    .iter()
                    .find(|(n, _)| name.eq_ignore_ascii_case(n))
                    .is_none_or(|(_, fact)| self.contains(*fact))
            })
            .map(|f| format!("{f};"))
            .collect()
    }
}

/// The longest command a log line shows (verb and argument together).
pub const LOGGED_CHARS: usize = 200;

/// `text` on one line (see [`one_line`]), cut to `max` characters and `…` when longer.
pub fn shorten(text: &str, max: usize) -> String {
    let line = one_line(text);
    match line.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}
