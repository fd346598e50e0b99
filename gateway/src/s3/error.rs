//! Classifies aws-sdk-s3 errors (service code, HTTP status, transport failure) into
//! [`Failure`]s. The SDK has already retried throttling and 5xx replies by the time an error
//! gets here, so those become `Transient` (451, try again). The SDK error classified by
//! value stays the failure's underlying error (`source()`), so a log can tell the DNS, TLS or
//! connection failure behind "storage service unreachable".

use std::sync::Arc;

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
        Some("EntityTooLarge") | Some("MaxMessageLengthExceeded") => {
            Failure::TooLarge(detail().into())
        }
        Some("QuotaExceeded") | Some("InsufficientStorage") | Some("StorageQuotaExceeded") => {
            Failure::QuotaExceeded(detail().into())
        }
        Some("SlowDown")
        | Some("ServiceUnavailable")
        | Some("InternalError")
        | Some("RequestTimeout")
        | Some("Throttling")
        | Some("TooManyRequests") => Failure::Transient(detail().into()),
        Some("PreconditionFailed") => Failure::Changed(CHANGED.into()),
        Some("PermanentRedirect")
        | Some("AuthorizationHeaderMalformed")
        | Some("IllegalLocationConstraintException") => Failure::WrongRegion(None),
        _ => match status {
            Some(404) => Failure::NotFound,
            Some(403) => Failure::AccessDenied,
            Some(301) => Failure::WrongRegion(None),
            Some(412) => Failure::Changed(CHANGED.into()),
            Some(500..=599) | Some(429) => Failure::Transient(detail().into()),
            _ => Failure::Other(detail().into()),
        },
    }
}

/// An SDK error to classify: by value a transport failure (no connection, a timeout, an
/// unreadable reply) becomes the failure's underlying error; by reference (where the caller
/// still needs the error) only the words are kept. A service's error reply is all in the
/// words either way.
pub trait Classify {
    /// The failure this error is.
    fn to_failure(self) -> Failure;
}

impl<E> Classify for SdkError<E, HttpResponse>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    fn to_failure(self) -> Failure {
        let failure = classify_words(&self);
        match self {
            // The words already hold the service's code, message and status.
            SdkError::ServiceError(_) => failure,
            other => failure.or_caused_by(Arc::new(other)),
        }
    }
}

impl<E: ProvideErrorMetadata> Classify for &SdkError<E, HttpResponse> {
    fn to_failure(self) -> Failure {
        classify_words(self)
    }
}

/// Classifies any SDK error; pass it by value to keep it as the failure's cause.
pub fn classify(err: impl Classify) -> Failure {
    err.to_failure()
}

/// The failure an SDK error is, in words only.
fn classify_words<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> Failure {
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
            Failure::Transient(format!("storage service unreachable: {what}").into())
        }
        SdkError::ResponseError(r) => Failure::Transient(
            format!("unreadable reply (HTTP {})", r.raw().status().as_u16()).into(),
        ),
        SdkError::ConstructionFailure(_) => Failure::Other("could not build the request".into()),
        _ => Failure::Other(err.to_string().into()),
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

impl<T, E> ClassifyExt<T> for Result<T, SdkError<E, HttpResponse>>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    fn classified(self) -> Result<T, Failure> {
        self.map_err(classify)
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

    #[test]
    fn a_dispatch_failure_keeps_the_connectors_error() {
        use aws_sdk_s3::operation::list_buckets::ListBucketsError;
        use aws_smithy_runtime_api::client::result::ConnectorError;
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let err: SdkError<ListBucketsError, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::io(Box::new(io)));
        let words_only = classify(&err);
        let f = classify(err);
        assert_eq!(
            f.to_string(),
            "storage service unavailable, try again: storage service unreachable: connection \
             failed"
        );
        assert_eq!(f, words_only);
        assert!(f.has_cause() && !words_only.has_cause());
        let line = crate::error::chain(&f);
        assert!(
            line.starts_with(&f.to_string()) && line.ends_with("connection refused"),
            "{line}"
        );
    }
}
