use bytes::Bytes;
use kafka_protocol::messages::RequestKind;

use super::sample::{Rng, build};
use super::*;
use crate::kafka::versions;

#[test]
fn every_request_built_from_its_shape_decodes_exactly() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for (api, version) in versions::served() {
        for round in 0..200 {
            let (body, _) = build(api, version, &mut rng, None);
            check(api, version, &body)
                .unwrap_or_else(|e| panic!("{api:?} v{version} round {round}: {e}"));
            let mut bytes = Bytes::from(body.clone());
            if let Err(e) = RequestKind::decode(api, &mut bytes, version) {
                panic!("{api:?} v{version} round {round}: the decoder refuses {body:02x?}: {e}");
            }
            assert_eq!(
                bytes.len(),
                0,
                "{api:?} v{version}: the decoder left bytes of {body:02x?}: the shape has a field too many"
            );
        }
    }
}

#[test]
fn a_truncated_request_is_refused() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for (api, version) in versions::served() {
        for _ in 0..20 {
            let (body, _) = build(api, version, &mut rng, None);
            for cut in 0..body.len() {
                assert!(
                    check(api, version, &body[..cut]).is_err(),
                    "{api:?} v{version}: {:02x?} cut at {cut} passed",
                    body
                );
            }
        }
    }
}

#[test]
fn a_count_the_frame_cannot_hold_is_refused_before_decoding() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut refused = 0;
    for (api, version) in versions::served() {
        for k in 0..8 {
            let (mut body, huge) = build(api, version, &mut rng, Some(k));
            if !huge {
                break; // fewer than k + 1 arrays in this request
            }
            // Plenty of bytes after the count, but far fewer than 2^31 - 1.
            body.extend(std::iter::repeat_n(0u8, 64));
            let e = check(api, version, &body).expect_err("a count of 2^31 - 1 must be refused");
            assert!(e.reason.contains("elements"), "{api:?} v{version}: {e}");
            refused += 1;
        }
    }
    assert!(refused > 100, "only {refused} crafted frames were built");
}

#[test]
fn the_frame_that_aborted_blink_is_refused() {
    // Metadata v0, topic count 2^31 - 1 (issue 13): its body after the header.
    let frame = hex("0000001000030000000000010002667a7fffffff");
    let body = &frame[4 + 8 + 4..];
    let e = check(ApiKey::Metadata, 0, body).unwrap_err();
    assert_eq!(
        e.reason,
        "an array of 2147483647 elements, with 0 bytes left"
    );
}

#[test]
fn tagged_fields_and_varints_are_bounded() {
    // ApiVersions v3: two empty compact strings, then 2^28 tagged fields claimed in 4 bytes.
    let body = [1, 1, 0x80, 0x80, 0x80, 0x01];
    let e = check(ApiKey::ApiVersions, 3, &body).unwrap_err();
    assert!(e.reason.contains("tagged fields"), "{e}");
    // A varint that never ends.
    let e = check(ApiKey::ApiVersions, 3, &[0xff; 8]).unwrap_err();
    assert!(e.reason.contains("varint"), "{e}");
    // A negative length.
    let e = check(ApiKey::Metadata, 1, &[0xff, 0xff, 0xff, 0xfe]).unwrap_err();
    assert!(e.reason.contains("negative"), "{e}");
}

pub(crate) fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}
