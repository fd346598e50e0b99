//! Everything that speaks S3: client construction per credential from one shared HTTP client,
//! provider presets, and the classification of S3 errors into FTP-meaningful failures. An
//! endpoint served by this process (the embedded local store) is reached without a socket
//! (`direct`). Beside them: the embedded no-cloud store ([`local`]), "Test connection"
//! ([`probe`]) and the janitor of multipart uploads left by a killed gateway ([`janitor`]).

pub(crate) mod direct;
pub mod error;
pub(crate) mod janitor;
pub mod local;
pub mod probe;
pub mod provider;
pub mod reply_header;

use std::time::Duration;

use aws_credential_types::Credentials;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Region, RequestChecksumCalculation, ResponseChecksumValidation,
    SharedHttpClient,
};
use aws_smithy_http_client::tls;

pub use provider::{Addressing, BodyChecksum, Provider};

/// How to reach the object store: a provider preset plus the user's overrides.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct S3Settings {
    /// The provider whose preset gives the endpoint template, region and limits.
    pub provider: Provider,
    /// An explicit endpoint URL; overrides the preset's template.
    pub endpoint: Option<String>,
    /// The signing region; `None` takes the preset's default (and, for AWS, the bucket's
    /// region is found at login).
    pub region: Option<String>,
    /// Addressing style; `None` takes the preset's.
    pub addressing: Option<Addressing>,
    /// The checksum request bodies carry; `None` takes the preset's (a custom endpoint that
    /// checks CRC32C or CRC-64/NVME may say so here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<BodyChecksum>,
}

impl S3Settings {
    /// Settings for a custom endpoint with path-style addressing (MinIO, Garage, local stores).
    pub fn custom(endpoint: impl Into<String>, region: impl Into<String>) -> Self {
        Self {
            provider: Provider::Custom,
            endpoint: Some(endpoint.into()),
            region: Some(region.into()),
            addressing: Some(Addressing::Path),
            checksum: None,
        }
    }
}

/// Settings that cannot work, said plainly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// The provider needs an explicit endpoint.
    #[error(
        "provider {0} needs --endpoint (for example https://<account>.r2.cloudflarestorage.com for R2)"
    )]
    EndpointRequired(Provider),
    /// The endpoint is not an http(s) URL.
    #[error("endpoint {0:?} must start with http:// or https://")]
    BadEndpoint(String),
}

/// The resolved, validated connection settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Provider preset.
    pub provider: Provider,
    /// Endpoint URL, or `None` to let the SDK resolve AWS endpoints.
    pub endpoint: Option<String>,
    /// Signing region.
    pub region: String,
    /// True for path-style addressing.
    pub path_style: bool,
    /// True when the region should be discovered from the bucket (AWS with no region given).
    pub discover_region: bool,
    /// Largest single CopyObject.
    pub max_copy_object: u64,
    /// True when every part of a multipart upload but the last must be the same size.
    pub equal_parts: bool,
    /// True when upload bodies are signed (SHA-256 of every byte in the signature); false
    /// when they travel as `UNSIGNED-PAYLOAD` (see [`payload_signing_needed`]).
    pub sign_payload: bool,
    /// The checksum every request body carries for the store to verify.
    pub checksum: BodyChecksum,
    /// The reply header with a written object's CRC-64/XZ, for stores that report one.
    pub object_crc64_header: Option<&'static str>,
}

/// Whether upload bodies to `endpoint` need their SHA-256 in the signature. Over HTTPS (an
/// endpoint of `https://`, or none: the SDK's AWS endpoints are HTTPS) TLS already protects
/// every byte, and on loopback (`http://127.x.x.x`, `localhost`, `[::1]`: the embedded local
/// store, a store on the same machine) nothing travels: there the body goes as
/// `UNSIGNED-PAYLOAD`, as `aws s3` and curl's raw PUT send it, which saves one SHA-256 pass
/// over every byte uploaded. Plain HTTP to another machine keeps the signed hash, the only
/// check there that the bytes arrived as sent. Pure.
pub fn payload_signing_needed(endpoint: Option<&str>) -> bool {
    let Some(endpoint) = endpoint else {
        return false;
    };
    if endpoint.starts_with("https://") {
        return false;
    }
    let Some(rest) = endpoint.strip_prefix("http://") else {
        return true;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit('@').next().unwrap_or_default();
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    !loopback
}

impl S3Settings {
    /// Applies the preset and validates the result. Pure.
    pub fn resolve(&self) -> Result<Resolved, SettingsError> {
        let preset = self.provider.preset();
        let region = self
            .region
            .clone()
            .filter(|r| !r.trim().is_empty())
            .unwrap_or_else(|| preset.default_region.to_owned());
        let endpoint = match self.endpoint.as_deref().map(str::trim) {
            Some(e) if !e.is_empty() => {
                if !(e.starts_with("http://") || e.starts_with("https://")) {
                    return Err(SettingsError::BadEndpoint(e.to_owned()));
                }
                Some(e.trim_end_matches('/').to_owned())
            }
            _ => {
                if preset.endpoint_required {
                    return Err(SettingsError::EndpointRequired(self.provider));
                }
                self.provider.endpoint_for(&region)
            }
        };
        let addressing = self.addressing.unwrap_or(preset.addressing);
        let sign_payload = payload_signing_needed(endpoint.as_deref());
        Ok(Resolved {
            provider: self.provider,
            // Also with an endpoint of the user's (a dual-stack or FIPS endpoint, a proxy):
            // the signing region still has to be the bucket's.
            discover_region: self.provider == Provider::Aws
                && self.region.as_deref().is_none_or(|r| r.trim().is_empty()),
            endpoint,
            region,
            path_style: addressing == Addressing::Path,
            max_copy_object: preset.max_copy_object,
            equal_parts: preset.equal_parts,
            sign_payload,
            checksum: self.checksum.unwrap_or(preset.checksum),
            object_crc64_header: preset.object_crc64_header,
        })
    }
}

/// Builds one S3 client per credential, all sharing one HTTP client (connection pool, TLS
/// roots) built once.
#[derive(Debug, Clone)]
pub struct ClientFactory {
    resolved: Resolved,
    http: SharedHttpClient,
    metrics: Option<std::sync::Arc<crate::ops::metrics::Metrics>>,
}

impl ClientFactory {
    /// Validates `settings` and builds the shared HTTP client.
    pub fn new(settings: &S3Settings) -> Result<Self, SettingsError> {
        let resolved = settings.resolve()?;
        let mut http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::AwsLc,
            ))
            .build_https();
        // The embedded store of this process is reached without a socket (see `direct`).
        if let Some(addr) = resolved.endpoint.as_deref().and_then(direct::loopback_addr) {
            http = direct::routed(addr, http);
        }
        Ok(Self {
            resolved,
            http,
            metrics: None,
        })
    }

    /// Every client this factory builds reports its S3 requests to `metrics`.
    pub fn with_metrics(mut self, metrics: std::sync::Arc<crate::ops::metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The settings after the preset filled in what the user left out (endpoint, region,
    /// addressing, copy limit).
    pub fn resolved(&self) -> &Resolved {
        &self.resolved
    }

    /// A client for one credential, signing for `region` (or the configured one).
    pub fn client(&self, access_key: &str, secret_key: &str, region: Option<&str>) -> Client {
        let region = region.unwrap_or(&self.resolved.region).to_owned();
        let creds = Credentials::new(access_key, secret_key, None, None, "bucketftp-login");
        let mut builder = aws_sdk_s3::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .http_client(self.http.clone())
            .region(Region::new(region))
            .credentials_provider(creds)
            .force_path_style(self.resolved.path_style)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(4)
                    .with_initial_backoff(Duration::from_millis(200)),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .read_timeout(Duration::from_secs(60))
                    .build(),
            );
        if let Some(endpoint) = &self.resolved.endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        if let Some(metrics) = &self.metrics {
            builder = builder.interceptor(metrics.s3_interceptor());
        }
        Client::from_conf(builder.build())
    }
}

/// Per-login connection settings: the desktop's saved profiles. When a login's access key
/// matches one, its endpoint, region and addressing are used instead of the default.
pub trait LoginSettings: Send + Sync + std::fmt::Debug {
    /// The settings for `access_key`, if it has its own.
    fn settings_for(&self, access_key: &str) -> Option<S3Settings>;
}

/// Picks the client factory for a login: the default one, or one per distinct profile
/// settings (built once, then reused so the connection pool is shared).
#[derive(Debug)]
pub struct Factories {
    default: ClientFactory,
    per_login: Option<std::sync::Arc<dyn LoginSettings>>,
    cache: std::sync::Mutex<std::collections::HashMap<S3Settings, ClientFactory>>,
}

impl Factories {
    /// The default factory plus optional per-login settings.
    pub fn new(
        default: ClientFactory,
        per_login: Option<std::sync::Arc<dyn LoginSettings>>,
    ) -> Self {
        Self {
            default,
            per_login,
            cache: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// The factory for `access_key`.
    pub fn for_key(&self, access_key: &str) -> Result<ClientFactory, SettingsError> {
        let Some(settings) = self
            .per_login
            .as_ref()
            .and_then(|p| p.settings_for(access_key))
        else {
            return Ok(self.default.clone());
        };
        self.for_settings(&settings)
    }

    /// The factory for `settings` (a team user's storage, a profile): built once, then
    /// reused so the connection pool is shared.
    pub fn for_settings(&self, settings: &S3Settings) -> Result<ClientFactory, SettingsError> {
        let mut cache = crate::sync::lock(&self.cache);
        if let Some(f) = cache.get(settings) {
            return Ok(f.clone());
        }
        let mut f = ClientFactory::new(settings)?;
        f.metrics = self.default.metrics.clone();
        cache.insert(settings.clone(), f.clone());
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_signed_only_over_plain_http_to_another_machine() {
        let table = [
            (None, false),
            (Some("https://s3.eu-west-1.amazonaws.com"), false),
            (Some("https://192.0.2.7:9000"), false),
            (Some("http://127.0.0.1:3900"), false),
            (Some("http://127.8.9.10"), false),
            (Some("http://localhost:9000/"), false),
            (Some("http://LOCALHOST"), false),
            (Some("http://[::1]:9000"), false),
            (Some("http://user@127.0.0.1:1/path"), false),
            (Some("http://192.168.1.20:9000"), true),
            (Some("http://minio.lan:9000"), true),
            (Some("http://[2001:db8::1]:9000"), true),
            (Some("http://localhost.example.com"), true),
            (Some("http://127.0.0.1.example.com"), true),
            (Some("ftp://127.0.0.1"), true),
        ];
        for (endpoint, signed) in table {
            assert_eq!(payload_signing_needed(endpoint), signed, "{endpoint:?}");
        }
    }

    #[test]
    fn resolve_presets() {
        let s = S3Settings {
            provider: Provider::Oss,
            endpoint: None,
            region: Some("cn-shanghai".into()),
            addressing: None,
            checksum: None,
        };
        let r = s.resolve().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            r.endpoint.as_deref(),
            Some("https://oss-cn-shanghai.aliyuncs.com")
        );
        assert!(!r.path_style);
        assert!(!r.discover_region);

        let aws = S3Settings {
            provider: Provider::Aws,
            endpoint: None,
            region: None,
            addressing: None,
            checksum: None,
        };
        let r = aws.resolve().unwrap_or_else(|e| panic!("{e}"));
        assert!(r.discover_region);
        assert_eq!(r.region, "us-east-1");
        assert_eq!(r.endpoint, None);
        let aws_endpoint = S3Settings {
            endpoint: Some("https://s3.dualstack.eu-west-1.amazonaws.com".into()),
            ..aws.clone()
        };
        assert!(aws_endpoint.resolve().is_ok_and(|r| r.discover_region));
        let aws_region = S3Settings {
            region: Some("eu-west-1".into()),
            ..aws.clone()
        };
        assert!(aws_region.resolve().is_ok_and(|r| !r.discover_region));

        let r2 = S3Settings {
            provider: Provider::R2,
            endpoint: None,
            region: None,
            addressing: None,
            checksum: None,
        };
        assert_eq!(
            r2.resolve(),
            Err(SettingsError::EndpointRequired(Provider::R2))
        );

        let custom = S3Settings::custom("http://127.0.0.1:9000/", "garage");
        let r = custom.resolve().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert!(r.path_style);
        assert_eq!(r.region, "garage");

        let bad = S3Settings::custom("127.0.0.1:9000", "x");
        assert!(matches!(bad.resolve(), Err(SettingsError::BadEndpoint(_))));

        let forced = S3Settings {
            provider: Provider::Minio,
            endpoint: Some("http://m:9000".into()),
            region: None,
            addressing: Some(Addressing::VirtualHost),
            checksum: None,
        };
        assert!(!forced.resolve().map(|r| r.path_style).unwrap_or(true));
    }
}

#[cfg(test)]
mod factory_tests {
    use super::*;

    #[derive(Debug)]
    struct One;
    impl LoginSettings for One {
        fn settings_for(&self, access_key: &str) -> Option<S3Settings> {
            (access_key == "PROFILEKEY").then(|| S3Settings {
                provider: Provider::Oss,
                endpoint: None,
                region: Some("cn-beijing".into()),
                addressing: None,
                checksum: None,
            })
        }
    }

    #[test]
    fn profile_keys_get_their_own_settings() {
        let default = ClientFactory::new(&S3Settings::custom("http://127.0.0.1:9000", "us-east-1"))
            .unwrap_or_else(|e| panic!("{e}"));
        let f = Factories::new(default, Some(std::sync::Arc::new(One)));
        let p = f.for_key("PROFILEKEY").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            p.resolved().endpoint.as_deref(),
            Some("https://oss-cn-beijing.aliyuncs.com")
        );
        let d = f.for_key("OTHER").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            d.resolved().endpoint.as_deref(),
            Some("http://127.0.0.1:9000")
        );
    }
}
