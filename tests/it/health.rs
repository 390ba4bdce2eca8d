//! The health service (`weft::health`): `weft.health.v1.Health/Check` with an empty request
//! answers SERVING for the whole server, over a real socket and as raw protobuf any RSocket
//! client can send; per-service statuses from the reporter; `Watch` streams the status and
//! each change of it.

use bytes::Bytes;
use std::time::Duration;
use weft::health::{self, HealthCheckRequest, HealthClient, ServingStatus};
use weft::{Call, Client, Code, Server};

async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), f).await.expect("test timed out")
}

fn ask(service: &str) -> HealthCheckRequest {
    HealthCheckRequest { service: service.into() }
}

#[tokio::test]
async fn an_empty_check_answers_serving_on_the_wire() {
    let (_reporter, service) = health::service();
    let running = Server::builder().add_service(service).build().bind("127.0.0.1:0").await.unwrap();
    let client = bounded(Client::connect(running.local_addr())).await.unwrap();
    // What any RSocket client sends: the route, and an empty protobuf message.
    let answer =
        bounded(client.request_response(Call::new("weft.health.v1.Health/Check"), Bytes::new())).await.unwrap();
    // HealthCheckResponse { status: SERVING (1) }: field 1, varint, 1.
    assert_eq!(&answer.data[..], [0x08, 0x01]);
}

#[tokio::test]
async fn services_have_the_status_the_reporter_sets() {
    let (reporter, service) = health::service();
    let server = Server::builder().add_service(service).build();
    let health = HealthClient::new(bounded(server.connect_in_memory()).await.unwrap());
    let status = bounded(health.check(ask("orders.Orders"))).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status}");

    reporter.set_serving("orders.Orders");
    assert_eq!(bounded(health.check(ask("orders.Orders"))).await.unwrap().status(), ServingStatus::Serving);
    reporter.set_not_serving("orders.Orders");
    assert_eq!(bounded(health.check(ask("orders.Orders"))).await.unwrap().status(), ServingStatus::NotServing);
    assert_eq!(bounded(health.check(ask(""))).await.unwrap().status(), ServingStatus::Serving);

    reporter.set_serving("orders.Orders");
    reporter.set_all_not_serving();
    for name in ["", "orders.Orders"] {
        assert_eq!(bounded(health.check(ask(name))).await.unwrap().status(), ServingStatus::NotServing, "{name}");
    }
    reporter.clear_status("orders.Orders");
    assert_eq!(bounded(health.check(ask("orders.Orders"))).await.unwrap_err().code(), Code::NotFound);
}

#[tokio::test]
async fn watch_streams_the_status_and_its_changes() {
    let (reporter, service) = health::service();
    let server = Server::builder().add_service(service).build();
    let health = HealthClient::new(bounded(server.connect_in_memory()).await.unwrap());
    let mut watching = bounded(health.watch(ask("orders.Orders"))).await.unwrap();
    let next = async |watching: &mut weft::Streaming<_>| bounded(watching.message()).await.unwrap().unwrap();
    let first: health::HealthCheckResponse = next(&mut watching).await;
    assert_eq!(first.status(), ServingStatus::ServiceUnknown);

    reporter.set_serving("orders.Orders");
    assert_eq!(next(&mut watching).await.status(), ServingStatus::Serving);
    // Changes to other services, and a status set to what it was, send nothing: the next
    // message is the next change of this one.
    reporter.set_not_serving("billing.Billing");
    reporter.set_serving("orders.Orders");
    reporter.set_not_serving("orders.Orders");
    assert_eq!(next(&mut watching).await.status(), ServingStatus::NotServing);

    // The reporter gone, the stream stays open (as gRPC's): no message, no end.
    drop(reporter);
    let quiet = tokio::time::timeout(Duration::from_millis(100), watching.message()).await;
    assert!(quiet.is_err(), "nothing more: {quiet:?}");
}
