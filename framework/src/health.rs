//! The health service, `weft.health.v1.Health`, with gRPC's health-checking messages: load
//! balancers, orchestrators and monitoring ask a server whether it serves, for the whole
//! server (`""`) or one service by name, once (`Check`) or as a stream of changes (`Watch`).
//!
//! The application sets each service's status through the [`HealthReporter`]; the server
//! answers for itself (`""`) with `SERVING` unless told otherwise. Added to a server in one
//! line, and generated with Weft itself (`#[weft::service]`):
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use weft::Server;
//! use weft::health::{self, HealthCheckRequest, HealthClient, ServingStatus};
//!
//! let (reporter, service) = health::service();
//! let server = Server::builder().add_service(service).build();
//! reporter.set_status("orders.Orders", ServingStatus::NotServing);
//!
//! let health = HealthClient::new(server.connect_in_memory().await?);
//! let whole = health.check(HealthCheckRequest { service: String::new() }).await?;
//! assert_eq!(whole.status(), ServingStatus::Serving);
//! let orders = health.check(HealthCheckRequest { service: "orders.Orders".into() }).await?;
//! assert_eq!(orders.status(), ServingStatus::NotServing);
//! # Ok(())
//! # }
//! ```
//!
//! On the wire, any RSocket client can ask: route `weft.health.v1.Health/Check`, data a
//! protobuf `HealthCheckRequest { string service = 1; }` (an empty payload asks about the
//! whole server), answer a `HealthCheckResponse { ServingStatus status = 1; }` with
//! `SERVING = 1`; `Watch` is a request/stream of the same messages. As in gRPC, `Check` of a
//! service the reporter never named fails with `NOT_FOUND`, and `Watch` of one yields
//! `SERVICE_UNKNOWN` until it is named.

use crate::Status;
use futures_core::Stream;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::watch;

/// Asks about the server (`service` empty) or one of its services, by full name
/// (`package.Service`).
#[derive(Clone, PartialEq, Eq, Hash, prost::Message)]
pub struct HealthCheckRequest {
    /// The service's full name; empty for the whole server.
    #[prost(string, tag = "1")]
    pub service: String,
}

/// Whether the server, or the service asked about, serves.
#[derive(Clone, Copy, PartialEq, Eq, Hash, prost::Message)]
pub struct HealthCheckResponse {
    /// A [`ServingStatus`] (read it with [`HealthCheckResponse::status`]).
    #[prost(enumeration = "ServingStatus", tag = "1")]
    pub status: i32,
}

/// gRPC's serving statuses, with their numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ServingStatus {
    /// Not known.
    Unknown = 0,
    /// Serving.
    Serving = 1,
    /// Not serving (starting, draining, or failing).
    NotServing = 2,
    /// `Watch` only: the service has not been named (yet).
    ServiceUnknown = 3,
}

/// The health service's methods.
#[crate::service(package = "weft.health.v1", crate = "crate")]
pub trait Health {
    /// The status now; `NOT_FOUND` for a service that was never named.
    async fn check(&self, request: HealthCheckRequest) -> Result<HealthCheckResponse, Status>;
    /// The status now, then every change, until the caller cancels.
    async fn watch(
        &self,
        request: HealthCheckRequest,
    ) -> Result<impl Stream<Item = Result<HealthCheckResponse, Status>>, Status>;
}

/// The statuses the health service answers with, set by the application. Cheap to clone; every
/// clone sets the same statuses.
#[derive(Clone, Debug)]
pub struct HealthReporter {
    statuses: Arc<watch::Sender<HashMap<String, ServingStatus>>>,
}

impl HealthReporter {
    /// Sets the status of `service` (a full name, `package.Service`; `""` for the whole
    /// server). Watchers see the change.
    pub fn set_status(&self, service: impl Into<String>, status: ServingStatus) {
        let service = service.into();
        self.statuses.send_if_modified(|statuses| statuses.insert(service, status) != Some(status));
    }

    /// Sets `service` to [`ServingStatus::Serving`].
    pub fn set_serving(&self, service: impl Into<String>) {
        self.set_status(service, ServingStatus::Serving);
    }

    /// Sets `service` to [`ServingStatus::NotServing`].
    pub fn set_not_serving(&self, service: impl Into<String>) {
        self.set_status(service, ServingStatus::NotServing);
    }

    /// Forgets `service`: `Check` then answers `NOT_FOUND`, `Watch` `SERVICE_UNKNOWN`.
    pub fn clear_status(&self, service: &str) {
        self.statuses.send_if_modified(|statuses| statuses.remove(service).is_some());
    }

    /// Marks every service and the server itself not serving: for a server about to shut
    /// down, so that balancers stop sending it work first.
    pub fn set_all_not_serving(&self) {
        self.statuses.send_modify(|statuses| {
            statuses.values_mut().for_each(|status| *status = ServingStatus::NotServing);
        });
    }
}

/// The health service, serving what its [`HealthReporter`] sets.
#[derive(Clone, Debug)]
pub struct HealthService {
    statuses: watch::Receiver<HashMap<String, ServingStatus>>,
}

/// A health service and the reporter that sets its statuses; the server itself (`""`) starts
/// `SERVING`. Add the service to a server: `Server::builder().add_service(service)`.
pub fn service() -> (HealthReporter, HealthServer<HealthService>) {
    let statuses = HashMap::from([(String::new(), ServingStatus::Serving)]);
    let (tx, rx) = watch::channel(statuses);
    (HealthReporter { statuses: Arc::new(tx) }, HealthServer::new(HealthService { statuses: rx }))
}

fn response(status: ServingStatus) -> HealthCheckResponse {
    HealthCheckResponse { status: status as i32 }
}

impl Health for HealthService {
    async fn check(&self, request: HealthCheckRequest) -> Result<HealthCheckResponse, Status> {
        match self.statuses.borrow().get(&request.service) {
            Some(status) => Ok(response(*status)),
            None => Err(Status::not_found(format!("no health status for service `{}`", request.service))),
        }
    }

    async fn watch(
        &self,
        request: HealthCheckRequest,
    ) -> Result<impl Stream<Item = Result<HealthCheckResponse, Status>> + Send + 'static, Status> {
        // The current status, then one message per change of it (a change to other services
        // sends nothing), until the caller cancels.
        let state = (self.statuses.clone(), request.service, None);
        Ok(futures_util::stream::unfold(state, |(mut statuses, service, last)| async move {
            loop {
                let now = statuses.borrow_and_update().get(&service).copied().unwrap_or(ServingStatus::ServiceUnknown);
                if last != Some(now) {
                    return Some((Ok(response(now)), (statuses, service, Some(now))));
                }
                if statuses.changed().await.is_err() {
                    // The reporter is gone: the status will not change again, and the stream
                    // stays open as gRPC's does.
                    std::future::pending::<()>().await;
                }
            }
        }))
    }
}
