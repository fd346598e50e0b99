//! The HTTP client for an endpoint that may be served by this very process: the embedded
//! local store (`localstore`) of `bucketftp-server` or the desktop app.
//!
//! For an `http://` endpoint on a loopback address, every request first asks
//! [`localstore::direct::direct`] whether a store of this process listens there. If one does,
//! the request is handed to it as a value (signature check and all, see `localstore::direct`):
//! the part buffers the upload filled go to the store's file writes without passing through
//! the kernel twice, and a download's chunks come back the same way. If none does (another
//! process's store, a proxy, a store stopped since), the request goes over HTTP like any
//! other. The choice is made per request, so a store started or stopped after the client was
//! built is reached the right way.

use std::net::SocketAddr;

use aws_sdk_s3::config::SharedHttpClient;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::{
    RuntimeComponents, RuntimeComponentsBuilder,
};
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;

/// The loopback address an endpoint URL names, when requests to it may stay in this process:
/// `http://127.0.0.1:9000` → `127.0.0.1:9000`. HTTPS, host names and other machines: `None`.
/// Pure.
pub(crate) fn loopback_addr(endpoint: &str) -> Option<SocketAddr> {
    let rest = endpoint.strip_prefix("http://")?;
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    let addr: SocketAddr = authority.parse().ok()?;
    addr.ip().is_loopback().then_some(addr)
}

/// `http`, routed: requests to `addr` go to a store of this process when one listens there.
pub(crate) fn routed(addr: SocketAddr, http: SharedHttpClient) -> SharedHttpClient {
    SharedHttpClient::new(Routed { addr, http })
}

#[derive(Debug)]
struct Routed {
    addr: SocketAddr,
    http: SharedHttpClient,
}

impl HttpClient for Routed {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        // The HTTP client keeps its own connector cache; this one adds no state.
        SharedHttpConnector::new(RoutedConnector {
            addr: self.addr,
            reply_timeout: settings.read_timeout(),
            over_http: self.http.http_connector(settings, components),
        })
    }

    fn validate_base_client_config(
        &self,
        runtime_components: &RuntimeComponentsBuilder,
        cfg: &ConfigBag,
    ) -> Result<(), BoxError> {
        self.http
            .validate_base_client_config(runtime_components, cfg)
    }

    fn validate_final_config(
        &self,
        runtime_components: &RuntimeComponents,
        cfg: &ConfigBag,
    ) -> Result<(), BoxError> {
        self.http.validate_final_config(runtime_components, cfg)
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.http.connector_metadata()
    }
}

#[derive(Debug)]
struct RoutedConnector {
    addr: SocketAddr,
    /// How long the store may take to start its reply: the client's read timeout, as over HTTP.
    reply_timeout: Option<std::time::Duration>,
    over_http: SharedHttpConnector,
}

impl HttpConnector for RoutedConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let Some(store) = localstore::direct::direct(self.addr) else {
            return self.over_http.call(request);
        };
        let reply_timeout = self.reply_timeout;
        HttpConnectorFuture::new(async move {
            let request = request
                .try_into_http1x()
                .map_err(|e| ConnectorError::user(e.into()))?;
            let call = store.call(request);
            let reply = match reply_timeout {
                Some(limit) => tokio::time::timeout(limit, call).await.map_err(|_| {
                    ConnectorError::timeout(
                        format!("the local store did not answer within {limit:?}").into(),
                    )
                })?,
                None => call.await,
            }
            .map_err(|e| ConnectorError::io(e.into()))?;
            HttpResponse::try_from(reply.map(SdkBody::from_body_1_x))
                .map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_to_a_loopback_address_may_stay_in_process() {
        let table: [(&str, Option<&str>); 8] = [
            ("http://127.0.0.1:9000", Some("127.0.0.1:9000")),
            ("http://127.0.0.1:9000/", Some("127.0.0.1:9000")),
            ("http://[::1]:9000", Some("[::1]:9000")),
            ("https://127.0.0.1:9000", None),
            ("http://localhost:9000", None),
            ("http://192.168.1.5:9000", None),
            ("http://127.0.0.1:9000/prefix", None),
            ("http://127.0.0.1", None),
        ];
        for (endpoint, want) in table {
            let want = want.map(|a| a.parse::<SocketAddr>().unwrap());
            assert_eq!(loopback_addr(endpoint), want, "{endpoint}");
        }
    }
}
