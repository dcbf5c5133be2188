//! gRPC health checking and server reflection for a server of this project (stores and MCs),
//! so grpcurl, load balancers and other generic clients can probe and explore it without the
//! .proto files.

use tonic_health::ServingStatus;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_reflection::server::v1::{ServerReflection, ServerReflectionServer};

pub const HEALTH: &str = "grpc.health.v1.Health";
pub const REFLECTION: &str = "grpc.reflection.v1.ServerReflection";

/// A health service reporting `services` (and the server as a whole, "") as serving, and a
/// reflection service listing exactly `services` plus these two.
pub async fn services(
    services: &[&str],
) -> (
    HealthServer<impl Health>,
    ServerReflectionServer<impl ServerReflection>,
) {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", ServingStatus::Serving)
        .await;
    let mut builder = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .with_service_name(HEALTH)
        .with_service_name(REFLECTION);
    for s in services {
        reporter
            .set_service_status(*s, ServingStatus::Serving)
            .await;
        builder = builder.with_service_name(*s);
    }
    let reflection = builder
        .build_v1()
        .expect("the built-in descriptor sets are valid");
    (health, reflection)
}
