//! Reads one header of an S3 reply that the SDK does not model, for the operation it is
//! attached to (`customize().interceptor(...)`): the CRC-64 OSS and COS report for every
//! written object (`x-oss-hash-crc64ecma`, `x-cos-hash-crc64ecma`).

use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextRef;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// Keeps the value of `header` from the last reply of the operation it is attached to.
#[derive(Debug, Clone)]
pub struct ReplyHeader {
    header: &'static str,
    value: Arc<Mutex<Option<String>>>,
}

impl ReplyHeader {
    /// A reader of `header` (lower case).
    pub fn new(header: &'static str) -> Self {
        Self {
            header,
            value: Arc::new(Mutex::new(None)),
        }
    }

    /// The header's value in the last reply, if it had one.
    pub fn value(&self) -> Option<String> {
        crate::sync::lock(&self.value).clone()
    }
}

impl Intercept for ReplyHeader {
    fn name(&self) -> &'static str {
        "BucketFtpReplyHeader"
    }

    fn read_before_deserialization(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // Each attempt's reply replaces the last: the one that counts is the final one.
        *crate::sync::lock(&self.value) = context
            .response()
            .headers()
            .get(self.header)
            .map(str::to_owned);
        Ok(())
    }
}
