//! Provider presets: endpoint template, default region, addressing style, size limits and
//! the checksum each request body carries, for each S3-compatible service we know. Pure data
//! and functions, no I/O.
//!
//! The checksum (see [`BodyChecksum`]): the store recomputes it over the body it received and
//! refuses the request when they differ, so a byte changed on the way is never stored. AWS
//! takes CRC-64/NVME on every request and, on a multipart upload, the whole object's
//! (`FULL_OBJECT`), which it checks before the commit; the others `Content-MD5`, the one every
//! S3-compatible store checks (OSS, COS and QingStor document only it; R2, B2 and Wasabi
//! document the flexible headers incompletely; MinIO knows `FULL_OBJECT` only in its 2025
//! releases, so an older server would refuse the commits: `--checksum crc32c` for a new one). OSS and COS also report
//! the whole object's CRC-64/XZ after a write (`x-oss-hash-crc64ecma`, `x-cos-hash-crc64ecma`),
//! which the upload compares with its own.

use std::fmt;
use std::str::FromStr;

/// How bucket names are put into request URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Addressing {
    /// `https://endpoint/bucket/key` (MinIO, most local servers).
    Path,
    /// `https://bucket.endpoint/key` (AWS, required by Aliyun OSS).
    VirtualHost,
}

/// A known S3-compatible service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Amazon S3.
    Aws,
    /// Aliyun (Alibaba Cloud) OSS.
    Oss,
    /// Tencent Cloud COS.
    Cos,
    /// QingStor (QingCloud object storage).
    Qingstor,
    /// Cloudflare R2.
    R2,
    /// MinIO or any self-hosted S3 server.
    Minio,
    /// Backblaze B2 (S3 API).
    B2,
    /// Wasabi.
    Wasabi,
    /// Any other endpoint, given explicitly.
    Custom,
}

/// What a preset says about a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preset {
    /// The name used on the command line and in profiles.
    pub name: &'static str,
    /// A human name for menus.
    pub label: &'static str,
    /// Endpoint with `{region}` in it; `None` when the SDK resolves it (AWS) or the user must
    /// give one.
    pub endpoint_template: Option<&'static str>,
    /// The region used when none is given.
    pub default_region: &'static str,
    /// Regions offered in menus (the user may type any other).
    pub regions: &'static [&'static str],
    /// The addressing style the service needs or prefers.
    pub addressing: Addressing,
    /// Largest object a single CopyObject may copy; larger ones use UploadPartCopy.
    pub max_copy_object: u64,
    /// True when the user must give the endpoint (R2's carries the account id; MinIO and
    /// custom servers live anywhere).
    pub endpoint_required: bool,
    /// True when every part of a multipart upload but the last must be the same size
    /// (R2), so uploads cannot grow their parts.
    pub equal_parts: bool,
    /// The checksum each request body carries.
    pub checksum: BodyChecksum,
    /// The reply header in which the store reports a written object's CRC-64/XZ (OSS, COS).
    pub object_crc64_header: Option<&'static str>,
}

const GIB: u64 = 1024 * 1024 * 1024;

/// The checksum every PutObject and UploadPart carries for the store to verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BodyChecksum {
    /// `Content-MD5` (RFC 1864): every S3-compatible store checks it.
    Md5,
    /// `x-amz-checksum-crc32c`; multipart uploads also send the whole object's (`FULL_OBJECT`).
    Crc32c,
    /// `x-amz-checksum-crc64nvme`; multipart uploads also send the whole object's.
    Crc64nvme,
}

impl BodyChecksum {
    /// The name in settings and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            BodyChecksum::Md5 => "md5",
            BodyChecksum::Crc32c => "crc32c",
            BodyChecksum::Crc64nvme => "crc64nvme",
        }
    }
}

impl FromStr for BodyChecksum {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().replace('-', "").as_str() {
            "md5" | "contentmd5" => Ok(BodyChecksum::Md5),
            "crc32c" => Ok(BodyChecksum::Crc32c),
            "crc64nvme" => Ok(BodyChecksum::Crc64nvme),
            _ => Err(format!(
                "unknown checksum {s:?}: expected md5, crc32c or crc64nvme"
            )),
        }
    }
}

impl fmt::Display for BodyChecksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Provider {
    /// Every provider, in menu order.
    pub const ALL: [Provider; 9] = [
        Provider::Aws,
        Provider::Oss,
        Provider::Cos,
        Provider::Qingstor,
        Provider::R2,
        Provider::Minio,
        Provider::B2,
        Provider::Wasabi,
        Provider::Custom,
    ];

    /// The preset for this provider.
    pub fn preset(self) -> Preset {
        match self {
            Provider::Aws => Preset {
                name: "aws",
                label: "Amazon S3",
                endpoint_template: None,
                default_region: "us-east-1",
                regions: &[
                    "us-east-1",
                    "us-east-2",
                    "us-west-1",
                    "us-west-2",
                    "ca-central-1",
                    "eu-west-1",
                    "eu-west-2",
                    "eu-central-1",
                    "eu-north-1",
                    "ap-northeast-1",
                    "ap-northeast-2",
                    "ap-southeast-1",
                    "ap-southeast-2",
                    "ap-south-1",
                    "sa-east-1",
                ],
                addressing: Addressing::VirtualHost,
                max_copy_object: 5 * GIB,
                endpoint_required: false,
                equal_parts: false,
                checksum: BodyChecksum::Crc64nvme,
                object_crc64_header: None,
            },
            Provider::Oss => Preset {
                name: "oss",
                label: "Aliyun OSS",
                endpoint_template: Some("https://oss-{region}.aliyuncs.com"),
                default_region: "cn-hangzhou",
                regions: &[
                    "cn-hangzhou",
                    "cn-shanghai",
                    "cn-beijing",
                    "cn-shenzhen",
                    "cn-qingdao",
                    "cn-zhangjiakou",
                    "cn-hongkong",
                    "ap-southeast-1",
                    "ap-northeast-1",
                    "us-west-1",
                    "eu-central-1",
                ],
                addressing: Addressing::VirtualHost,
                max_copy_object: GIB,
                endpoint_required: false,
                equal_parts: false,
                checksum: BodyChecksum::Md5,
                object_crc64_header: Some("x-oss-hash-crc64ecma"),
            },
            Provider::Cos => Preset {
                name: "cos",
                label: "Tencent COS",
                endpoint_template: Some("https://cos.{region}.myqcloud.com"),
                default_region: "ap-guangzhou",
                regions: &[
                    "ap-guangzhou",
                    "ap-shanghai",
                    "ap-beijing",
                    "ap-chengdu",
                    "ap-chongqing",
                    "ap-nanjing",
                    "ap-hongkong",
                    "ap-singapore",
                    "ap-tokyo",
                    "na-siliconvalley",
                    "eu-frankfurt",
                ],
                addressing: Addressing::VirtualHost,
                max_copy_object: 5 * GIB,
                endpoint_required: false,
                equal_parts: false,
                checksum: BodyChecksum::Md5,
                object_crc64_header: Some("x-cos-hash-crc64ecma"),
            },
            Provider::Qingstor => Preset {
                name: "qingstor",
                label: "QingStor",
                endpoint_template: Some("https://s3.{region}.qingstor.com"),
                default_region: "pek3b",
                regions: &["pek3a", "pek3b", "sh1a", "gd2", "ap3"],
                addressing: Addressing::VirtualHost,
                max_copy_object: 5 * GIB,
                endpoint_required: false,
                equal_parts: false,
                checksum: BodyChecksum::Md5,
                object_crc64_header: None,
            },
            Provider::R2 => Preset {
                name: "r2",
                label: "Cloudflare R2",
                endpoint_template: None,
                default_region: "auto",
                regions: &["auto"],
                addressing: Addressing::Path,
                max_copy_object: 5 * GIB,
                endpoint_required: true,
                equal_parts: true,
                checksum: BodyChecksum::Md5,
                object_crc64_header: None,
            },
            Provider::Minio => Preset {
                name: "minio",
                label: "MinIO",
                endpoint_template: None,
                default_region: "us-east-1",
                regions: &["us-east-1"],
                addressing: Addressing::Path,
                max_copy_object: 5 * GIB,
                endpoint_required: true,
                equal_parts: false,
                checksum: BodyChecksum::Md5,
                object_crc64_header: None,
            },
            Provider::B2 => Preset {
                name: "b2",
                label: "Backblaze B2",
                endpoint_template: Some("https://s3.{region}.backblazeb2.com"),
                default_region: "us-west-004",
                regions: &[
                    "us-west-001",
                    "us-west-002",
                    "us-west-004",
                    "us-east-005",
                    "eu-central-003",
                ],
                addressing: Addressing::VirtualHost,
                max_copy_object: 5 * GIB,
                endpoint_required: false,
                equal_parts: false,
                checksum: BodyChecksum::Md5,
                object_crc64_header: None,
            },
            Provider::Wasabi => Preset {
                name: "wasabi",
                label: "Wasabi",
                endpoint_template: Some("https://s3.{region}.wasabisys.com"),
                default_region: "us-east-1",
                regions: &[
                    "us-east-1",
                    "us-east-2",
                    "us-central-1",
                    "us-west-1",
                    "eu-central-1",
                    "eu-west-1",
                    "ap-northeast-1",
                    "ap-southeast-1",
                ],
                addressing: Addressing::VirtualHost,
                max_copy_object: 5 * GIB,
                endpoint_required: false,
                equal_parts: false,
                checksum: BodyChecksum::Md5,
                object_crc64_header: None,
            },
            Provider::Custom => Preset {
                name: "custom",
                label: "Custom endpoint",
                endpoint_template: None,
                default_region: "us-east-1",
                regions: &["us-east-1"],
                addressing: Addressing::Path,
                max_copy_object: 5 * GIB,
                endpoint_required: true,
                equal_parts: false,
                checksum: BodyChecksum::Md5,
                object_crc64_header: None,
            },
        }
    }

    /// The endpoint for `region`, when the preset has a template.
    pub fn endpoint_for(self, region: &str) -> Option<String> {
        self.preset()
            .endpoint_template
            .map(|t| t.replace("{region}", region))
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.preset().name)
    }
}

/// An unknown provider name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown provider {0:?}; known: aws, oss, cos, qingstor, r2, minio, b2, wasabi, custom")]
pub struct UnknownProvider(pub String);

impl FromStr for Provider {
    type Err = UnknownProvider;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        let found = match lower.as_str() {
            "s3" | "amazon" => Some(Provider::Aws),
            "aliyun" | "alibaba" => Some(Provider::Oss),
            "tencent" | "qcloud" => Some(Provider::Cos),
            "cloudflare" => Some(Provider::R2),
            "backblaze" => Some(Provider::B2),
            other => Provider::ALL.into_iter().find(|p| p.preset().name == other),
        };
        found.ok_or(UnknownProvider(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_from_templates() {
        let table = [
            (
                Provider::Oss,
                "cn-beijing",
                Some("https://oss-cn-beijing.aliyuncs.com"),
            ),
            (
                Provider::Cos,
                "ap-shanghai",
                Some("https://cos.ap-shanghai.myqcloud.com"),
            ),
            (
                Provider::Qingstor,
                "pek3a",
                Some("https://s3.pek3a.qingstor.com"),
            ),
            (
                Provider::B2,
                "us-west-004",
                Some("https://s3.us-west-004.backblazeb2.com"),
            ),
            (
                Provider::Wasabi,
                "eu-central-1",
                Some("https://s3.eu-central-1.wasabisys.com"),
            ),
            (Provider::Aws, "eu-west-1", None),
            (Provider::R2, "auto", None),
        ];
        for (p, region, want) in table {
            assert_eq!(p.endpoint_for(region).as_deref(), want, "{p}");
        }
    }

    #[test]
    fn names_round_trip_and_aliases() {
        for p in Provider::ALL {
            assert_eq!(p.to_string().parse::<Provider>(), Ok(p));
        }
        assert_eq!("Aliyun".parse::<Provider>(), Ok(Provider::Oss));
        assert_eq!(" R2 ".parse::<Provider>(), Ok(Provider::R2));
        assert!("dropbox".parse::<Provider>().is_err());
    }

    #[test]
    fn provider_rules() {
        assert_eq!(Provider::Oss.preset().addressing, Addressing::VirtualHost);
        assert_eq!(Provider::Minio.preset().addressing, Addressing::Path);
        assert_eq!(Provider::R2.preset().default_region, "auto");
        assert_eq!(Provider::Oss.preset().max_copy_object, GIB);
        assert!(Provider::R2.preset().endpoint_required);
        assert!(Provider::R2.preset().equal_parts);
        assert!(!Provider::Minio.preset().equal_parts);
        assert_eq!(Provider::Aws.preset().checksum, BodyChecksum::Crc64nvme);
        assert_eq!(Provider::Oss.preset().checksum, BodyChecksum::Md5);
        assert_eq!(Provider::Custom.preset().checksum, BodyChecksum::Md5);
        assert_eq!(
            Provider::Cos.preset().object_crc64_header,
            Some("x-cos-hash-crc64ecma")
        );
        assert_eq!(Provider::Aws.preset().object_crc64_header, None);
        for c in [
            BodyChecksum::Md5,
            BodyChecksum::Crc32c,
            BodyChecksum::Crc64nvme,
        ] {
            assert_eq!(c.name().parse::<BodyChecksum>(), Ok(c));
        }
        assert_eq!(
            "CRC-64/NVME".replace('/', "").parse::<BodyChecksum>(),
            Ok(BodyChecksum::Crc64nvme)
        );
        assert!("sha1".parse::<BodyChecksum>().is_err());
        for p in Provider::ALL {
            let preset = p.preset();
            assert!(preset.regions.contains(&preset.default_region), "{p}");
        }
    }
}
