//! Classifies aws-sdk-s3 errors (service code, HTTP status, transport failure) into
//! [`Failure`]s. The SDK has already retried throttling and 5xx replies by the time an error
//! gets here, so those become `Transient` (451, try again).

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use crate::error::Failure;

/// A `412 PreconditionFailed` in words; the transfer that got it says what it means for it.
const CHANGED: &str = "the file changed on the store while it was being read";

/// Classifies an S3 error code and HTTP status. Pure; see the table test.
pub fn classify_code(code: Option<&str>, status: Option<u16>, message: Option<&str>) -> Failure {
    let detail = || {
        let mut s = code.unwrap_or("error").to_owned();
        if let Some(m) = message.filter(|m| !m.is_empty()) {
            s.push_str(": ");
            s.push_str(m);
        }
        if let Some(st) = status {
            s.push_str(&format!(" (HTTP {st})"));
        }
        s
    };
    match code {
        Some("NoSuchKey") | Some("NotFound") => Failure::NotFound,
        Some("NoSuchBucket") => Failure::NoSuchBucket,
        // Some stores (Garage) answer a bad signature with AccessDenied and say so in words.
        Some("AccessDenied")
            if message.is_some_and(|m| m.to_ascii_lowercase().contains("signature")) =>
        {
            Failure::BadSecret
        }
        Some("AccessDenied") | Some("AllAccessDisabled") | Some("AccountProblem") => {
            Failure::AccessDenied
        }
        Some("InvalidAccessKeyId") => Failure::InvalidAccessKey,
        Some("SignatureDoesNotMatch") => Failure::BadSecret,
        Some("EntityTooLarge") | Some("MaxMessageLengthExceeded") => Failure::TooLarge(detail()),
        Some("QuotaExceeded") | Some("InsufficientStorage") | Some("StorageQuotaExceeded") => {
            Failure::QuotaExceeded(detail())
        }
        Some("SlowDown")
        | Some("ServiceUnavailable")
        | Some("InternalError")
        | Some("RequestTimeout")
        | Some("Throttling")
        | Some("TooManyRequests") => Failure::Transient(detail()),
        Some("PreconditionFailed") => Failure::Changed(CHANGED.into()),
        Some("PermanentRedirect")
        | Some("AuthorizationHeaderMalformed")
        | Some("IllegalLocationConstraintException") => Failure::WrongRegion(None),
        _ => match status {
            Some(404) => Failure::NotFound,
            Some(403) => Failure::AccessDenied,
            Some(301) => Failure::WrongRegion(None),
            Some(412) => Failure::Changed(CHANGED.into()),
            Some(500..=599) | Some(429) => Failure::Transient(detail()),
            _ => Failure::Other(detail()),
        },
    }
}

/// Classifies any SDK error.
pub fn classify<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> Failure {
    match err {
        SdkError::ServiceError(se) => {
            let e = se.err();
            match classify_code(e.code(), Some(se.raw().status().as_u16()), e.message()) {
                Failure::WrongRegion(None) => Failure::WrongRegion(bucket_region_hint(err)),
                f => f,
            }
        }
        SdkError::TimeoutError(_) => Failure::Transient("request timed out".into()),
        SdkError::DispatchFailure(d) => {
            let what = if d.is_timeout() {
                "timed out".to_owned()
            } else if d.is_io() {
                "connection failed".to_owned()
            } else {
                "could not send the request".to_owned()
            };
            Failure::Transient(format!("storage service unreachable: {what}"))
        }
        SdkError::ResponseError(r) => Failure::Transient(format!(
            "unreadable reply (HTTP {})",
            r.raw().status().as_u16()
        )),
        SdkError::ConstructionFailure(_) => Failure::Other("could not build the request".into()),
        _ => Failure::Other(err.to_string()),
    }
}

/// The bucket region an error reply names (`x-amz-bucket-region`), if any: AWS sends it with
/// redirects and region errors, which lets a login find the right region.
pub fn bucket_region_hint<E>(err: &SdkError<E, HttpResponse>) -> Option<String> {
    err.raw_response()
        .and_then(|r| r.headers().get("x-amz-bucket-region"))
        .map(str::to_owned)
}

/// Extension: turn SDK results into `Failure`s.
pub trait ClassifyExt<T> {
    /// Maps the error through [`classify`].
    fn classified(self) -> Result<T, Failure>;
}

impl<T, E: ProvideErrorMetadata> ClassifyExt<T> for Result<T, SdkError<E, HttpResponse>> {
    fn classified(self) -> Result<T, Failure> {
        self.map_err(|e| classify(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_table() {
        let t = |c: Option<&str>, s: Option<u16>| classify_code(c, s, None);
        assert_eq!(t(Some("NoSuchKey"), Some(404)), Failure::NotFound);
        assert_eq!(t(None, Some(404)), Failure::NotFound);
        assert_eq!(t(Some("NoSuchBucket"), Some(404)), Failure::NoSuchBucket);
        assert_eq!(t(Some("AccessDenied"), Some(403)), Failure::AccessDenied);
        assert_eq!(t(None, Some(403)), Failure::AccessDenied);
        assert_eq!(
            t(Some("InvalidAccessKeyId"), Some(403)),
            Failure::InvalidAccessKey
        );
        assert_eq!(
            t(Some("SignatureDoesNotMatch"), Some(403)),
            Failure::BadSecret
        );
        assert!(matches!(
            t(Some("SlowDown"), Some(503)),
            Failure::Transient(_)
        ));
        assert!(matches!(t(None, Some(502)), Failure::Transient(_)));
        assert!(matches!(
            t(Some("EntityTooLarge"), Some(400)),
            Failure::TooLarge(_)
        ));
        assert!(matches!(
            t(Some("PermanentRedirect"), Some(301)),
            Failure::WrongRegion(_)
        ));
        assert!(matches!(t(Some("Weird"), Some(400)), Failure::Other(_)));
        assert!(matches!(
            t(Some("PreconditionFailed"), Some(412)),
            Failure::Changed(_)
        ));
        assert!(matches!(t(None, Some(412)), Failure::Changed(_)));
        let msg = classify_code(Some("SlowDown"), Some(503), Some("Please reduce")).to_string();
        assert!(msg.contains("SlowDown: Please reduce (HTTP 503)"), "{msg}");
    }
}
