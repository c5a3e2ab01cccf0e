//! The APIs and versions Blink serves, and ApiVersions.

use bytes::BytesMut;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, ResponseHeader};
use kafka_protocol::protocol::Encodable;

use super::codes;

/// (API, lowest, highest version) advertised. Produce v0–2 (the pre-0.11 message format) are
/// advertised because librdkafka before 2.11.1 turns compression off when a broker's Produce
/// minimum is above 0; a request of those versions closes its connection with a logged reason.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 0, 9),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::JoinGroup, 0, 7),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 4),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::OffsetFetch, 1, 8),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ListGroups, 0, 4),
    (ApiKey::DeleteTopics, 1, 5),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DeleteGroups, 0, 2),
    // Advertised from v0, as Kafka does: librdkafka before 2.x offers SASL only to a broker
    // listing v0 (it then uses v1). v0 itself, which sends the SASL tokens as bare frames
    // outside Kafka's framing, is not served (see `supports`).
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
];

/// Versions requests are actually decoded at (Produce v0–2 and SaslHandshake v0 cannot be).
pub fn supports(api: ApiKey, version: i16) -> bool {
    if (api == ApiKey::Produce && version < 3) || (api == ApiKey::SaslHandshake && version == 0) {
        return false;
    }
    SUPPORTED
        .iter()
        .any(|&(a, min, max)| a == api && (min..=max).contains(&version))
}

/// Every (API, version) requests are decoded at.
pub fn served() -> impl Iterator<Item = (ApiKey, i16)> {
    SUPPORTED
        .iter()
        .flat_map(|&(api, min, max)| (min..=max).map(move |v| (api, v)))
        .filter(|&(api, v)| supports(api, v))
}

fn api_keys() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .map(|&(api, min, max)| {
            ApiVersion::default()
                .with_api_key(api as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect()
}

pub fn response() -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(codes::NONE)
        .with_api_keys(api_keys())
}

/// The answer to an ApiVersions request of a version Blink does not know: header v0 and a v0
/// body with UNSUPPORTED_VERSION and the supported list (KIP-511).
pub fn unsupported(correlation: i32) -> BytesMut {
    let mut out = BytesMut::with_capacity(128);
    let body = ApiVersionsResponse::default()
        .with_error_code(codes::UNSUPPORTED_VERSION)
        .with_api_keys(api_keys());
    ResponseHeader::default()
        .with_correlation_id(correlation)
        .encode(&mut out, 0)
        .and_then(|()| body.encode(&mut out, 0))
        .expect("a v0 ApiVersions answer always encodes");
    out
}
