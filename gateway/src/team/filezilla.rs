//! FileZilla Site Manager files: what "Export FileZilla site…" writes and FileZilla's
//! File › Import reads (the same XML as its own `sitemanager.xml`).
//!
//! Pure text: one `<Server>` per site. A site asks FileZilla to "Require explicit FTP over TLS"
//! when the gateway offers FTPS (a plain-FTP upload that is cancelled cannot be told from a
//! finished one), and "Ask for password" unless the caller includes the secret, which then goes
//! in base64 as FileZilla stores it.

use std::fmt::Write as _;

/// FileZilla's protocol number for "Require explicit FTP over TLS" (FTPES).
pub const PROTOCOL_EXPLICIT_TLS: u8 = 4;
/// FileZilla's protocol number for "Only use plain FTP (insecure)".
pub const PROTOCOL_PLAIN_FTP: u8 = 6;
/// FileZilla's logon type "Normal" (user and stored password).
pub const LOGON_NORMAL: u8 = 1;
/// FileZilla's logon type "Ask for password".
pub const LOGON_ASK: u8 = 2;

/// One Site Manager entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// The name shown in the Site Manager (and used by `filezilla -c "0/NAME"`).
    pub name: String,
    /// Host to connect to, e.g. `127.0.0.1`.
    pub host: String,
    /// The gateway's FTP port, e.g. 2048.
    pub port: u16,
    /// The login, `ACCESS_KEY_ID/bucket`.
    pub user: String,
    /// The secret key, only when the user chose to include it.
    pub secret: Option<String>,
    /// Require explicit FTP over TLS (the gateway offers FTPS).
    pub explicit_tls: bool,
}

impl Site {
    /// FileZilla's protocol number for this site.
    pub fn protocol(&self) -> u8 {
        if self.explicit_tls {
            PROTOCOL_EXPLICIT_TLS
        } else {
            PROTOCOL_PLAIN_FTP
        }
    }

    /// FileZilla's logon type for this site.
    pub fn logon_type(&self) -> u8 {
        if self.secret.is_some() {
            LOGON_NORMAL
        } else {
            LOGON_ASK
        }
    }
}

/// The Site Manager XML for `sites`, ready for File › Import.
pub fn site_manager_xml(sites: &[Site]) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\" ?>\n\
         <FileZilla3 version=\"3.63.0\" platform=\"*nix\">\n\t<Servers>\n",
    );
    for site in sites {
        let _ = write!(
            out,
            "\t\t<Server>\n\
             \t\t\t<Host>{host}</Host>\n\
             \t\t\t<Port>{port}</Port>\n\
             \t\t\t<Protocol>{protocol}</Protocol>\n\
             \t\t\t<Type>0</Type>\n\
             \t\t\t<User>{user}</User>\n",
            host = escape(&site.host),
            port = site.port,
            protocol = site.protocol(),
            user = escape(&site.user),
        );
        if let Some(secret) = &site.secret {
            let _ = writeln!(
                out,
                "\t\t\t<Pass encoding=\"base64\">{}</Pass>",
                base64(secret.as_bytes())
            );
        }
        let _ = write!(
            out,
            "\t\t\t<Logontype>{logon}</Logontype>\n\
             \t\t\t<PasvMode>MODE_PASSIVE</PasvMode>\n\
             \t\t\t<EncodingType>UTF-8</EncodingType>\n\
             \t\t\t<BypassProxy>0</BypassProxy>\n\
             \t\t\t<Name>{name}</Name>\n\
             \t\t\t<SyncBrowsing>0</SyncBrowsing>\n\
             \t\t\t<DirectoryComparison>0</DirectoryComparison>\n\
             \t\t</Server>\n",
            logon = site.logon_type(),
            name = escape(&site.name),
        );
    }
    out.push_str("\t</Servers>\n</FileZilla3>\n");
    out
}

/// XML text escaping for element content.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Standard base64 with padding, as FileZilla reads `encoding="base64"`.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(secret: Option<&str>, tls: bool) -> Site {
        Site {
            name: "This computer <local>".into(),
            host: "127.0.0.1".into(),
            port: 2048,
            user: "AKID/bucket".into(),
            secret: secret.map(str::to_owned),
            explicit_tls: tls,
        }
    }

    #[test]
    fn base64_table() {
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), coded, "{plain}");
        }
    }

    #[test]
    fn asks_for_the_password_unless_the_secret_is_included() {
        let xml = site_manager_xml(&[site(None, true)]);
        assert!(xml.contains("<Logontype>2</Logontype>"), "{xml}");
        assert!(!xml.contains("<Pass"), "{xml}");
        assert!(xml.contains("<Protocol>4</Protocol>"), "{xml}");
        assert!(xml.contains("<User>AKID/bucket</User>"), "{xml}");
        assert!(
            xml.contains("<Name>This computer &lt;local&gt;</Name>"),
            "{xml}"
        );

        let xml = site_manager_xml(&[site(Some("s3cr&t"), false)]);
        assert!(xml.contains("<Logontype>1</Logontype>"), "{xml}");
        assert!(
            xml.contains("<Pass encoding=\"base64\">czNjciZ0</Pass>"),
            "{xml}"
        );
        assert!(!xml.contains("s3cr&t"), "the secret appears only encoded");
        assert!(xml.contains("<Protocol>6</Protocol>"), "{xml}");
    }

    #[test]
    fn one_server_per_site() {
        let xml = site_manager_xml(&[site(None, true), site(None, true)]);
        assert_eq!(xml.matches("<Server>").count(), 2);
        assert!(xml.starts_with("<?xml"));
        assert!(xml.trim_end().ends_with("</FileZilla3>"));
    }
}
