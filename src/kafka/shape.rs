//! The shape of every request Blink serves, walked over a frame before it is decoded.
//!
//! The decoder (kafka-protocol) reserves room for an array as soon as it reads the array's
//! count, before it reads a single element: a 20-byte Metadata request claiming 2^31 topics
//! made it ask for 154 GB and abort the process. Walking the request's shape first, with no
//! allocation at all, proves that every count is backed by elements actually present in the
//! frame; only a frame that passes is decoded, so decoding allocates in proportion to the
//! bytes received. The walk is linear in the frame: every element consumes at least one byte,
//! and a count larger than the bytes left is refused before any element is read.
//!
//! A shape lists each field with the versions that carry it, from the Kafka protocol's
//! request schemas; flexible versions (KIP-482) use compact strings, bytes and arrays and end
//! every structure with tagged fields, which the walk skips by their sizes. The tests build
//! random frames from these shapes and check that kafka-protocol decodes each one exactly, so a
//! shape that disagrees with the decoder fails there, not in front of a client.

use std::fmt;

use kafka_protocol::messages::ApiKey;

/// Why a frame does not have its request's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeError {
    /// Byte offset in the request body (after the header) where the walk stopped.
    pub at: usize,
    pub reason: String,
}

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "malformed at byte {} of the body: {}",
            self.at, self.reason
        )
    }
}

impl std::error::Error for ShapeError {}

/// What a field holds.
#[derive(Clone, Copy)]
enum Ty {
    /// A fixed-size value: integers, booleans, UUIDs.
    Fixed(usize),
    /// A (nullable) string: i16 length, or compact.
    Str,
    /// (Nullable) bytes: i32 length, or compact. Also a Produce partition's records.
    Bytes,
    /// A (nullable) array of values of one kind.
    Array(&'static Ty),
    /// A (nullable) array of structures.
    Structs(&'static [Field]),
}

const I8: Ty = Ty::Fixed(1);
const I16: Ty = Ty::Fixed(2);
const I32: Ty = Ty::Fixed(4);
const I64: Ty = Ty::Fixed(8);
const BOOL: Ty = Ty::Fixed(1);
const STR: Ty = Ty::Str;
const BYTES: Ty = Ty::Bytes;
const STRINGS: Ty = Ty::Array(&Ty::Str);
const INT32S: Ty = Ty::Array(&Ty::Fixed(4));

/// A field and the request versions that carry it (inclusive).
#[derive(Clone, Copy)]
struct Field {
    from: i16,
    to: i16,
    ty: Ty,
}

impl Field {
    fn in_version(&self, version: i16) -> bool {
        (self.from..=self.to).contains(&version)
    }
}

/// In every version.
const fn all(ty: Ty) -> Field {
    Field {
        from: 0,
        to: i16::MAX,
        ty,
    }
}

/// From `from` on.
const fn since(from: i16, ty: Ty) -> Field {
    Field {
        from,
        to: i16::MAX,
        ty,
    }
}

/// Up to `to`.
const fn until(to: i16, ty: Ty) -> Field {
    Field { from: 0, to, ty }
}

/// From `from` to `to`.
const fn between(from: i16, to: i16, ty: Ty) -> Field {
    Field { from, to, ty }
}

/// A request's body: its fields and its first flexible version.
struct Shape {
    flexible: i16,
    fields: &'static [Field],
}

const PRODUCE: Shape = Shape {
    flexible: 9,
    fields: &[
        since(3, STR), // transactional_id
        all(I16),      // acks
        all(I32),      // timeout_ms
        all(Ty::Structs(&[
            all(STR),                                  // topic name
            all(Ty::Structs(&[all(I32), all(BYTES)])), // partition index, records
        ])),
    ],
};

const FETCH: Shape = Shape {
    flexible: 12,
    fields: &[
        until(14, I32), // replica_id
        all(I32),       // max_wait_ms
        all(I32),       // min_bytes
        since(3, I32),  // max_bytes
        since(4, I8),   // isolation_level
        since(7, I32),  // session_id
        since(7, I32),  // session_epoch
        all(Ty::Structs(&[
            until(12, STR),           // topic
            since(13, Ty::Fixed(16)), // topic_id
            all(Ty::Structs(&[
                all(I32),       // partition
                since(9, I32),  // current_leader_epoch
                all(I64),       // fetch_offset
                since(12, I32), // last_fetched_epoch
                since(5, I64),  // log_start_offset
                all(I32),       // partition_max_bytes
            ])),
        ])),
        since(
            7,
            Ty::Structs(&[
                until(12, STR),           // forgotten topic
                since(13, Ty::Fixed(16)), // topic_id
                all(INT32S),              // partitions
            ]),
        ),
        since(11, STR), // rack_id
    ],
};

const LIST_OFFSETS: Shape = Shape {
    flexible: 6,
    fields: &[
        all(I32),     // replica_id
        since(2, I8), // isolation_level
        all(Ty::Structs(&[
            all(STR),
            all(Ty::Structs(&[
                all(I32),      // partition_index
                since(4, I32), // current_leader_epoch
                all(I64),      // timestamp
                until(0, I32), // max_num_offsets
            ])),
        ])),
        since(10, I32), // timeout_ms
    ],
};

const METADATA: Shape = Shape {
    flexible: 9,
    fields: &[
        all(Ty::Structs(&[since(10, Ty::Fixed(16)), all(STR)])), // topic id, name
        since(4, BOOL),                                          // allow_auto_topic_creation
        between(8, 10, BOOL), // include_cluster_authorized_operations
        since(8, BOOL),       // include_topic_authorized_operations
    ],
};

const API_VERSIONS: Shape = Shape {
    flexible: 3,
    fields: &[since(3, STR), since(3, STR)], // client software name, version
};

const CREATE_TOPICS: Shape = Shape {
    flexible: 5,
    fields: &[
        all(Ty::Structs(&[
            all(STR),                                   // name
            all(I32),                                   // num_partitions
            all(I16),                                   // replication_factor
            all(Ty::Structs(&[all(I32), all(INT32S)])), // assignments
            all(Ty::Structs(&[all(STR), all(STR)])),    // configs
        ])),
        all(I32),       // timeout_ms
        since(1, BOOL), // validate_only
    ],
};

const INIT_PRODUCER_ID: Shape = Shape {
    flexible: 2,
    fields: &[
        all(STR),       // transactional_id
        all(I32),       // transaction_timeout_ms
        since(3, I64),  // producer_id
        since(3, I16),  // producer_epoch
        since(6, BOOL), // enable_2pc
        since(6, BOOL), // keep_prepared_txn
    ],
};

const FIND_COORDINATOR: Shape = Shape {
    flexible: 3,
    fields: &[
        until(3, STR),     // key
        since(1, I8),      // key_type
        since(4, STRINGS), // coordinator_keys
    ],
};

const JOIN_GROUP: Shape = Shape {
    flexible: 6,
    fields: &[
        all(STR),                                  // group_id
        all(I32),                                  // session_timeout_ms
        since(1, I32),                             // rebalance_timeout_ms
        all(STR),                                  // member_id
        since(5, STR),                             // group_instance_id
        all(STR),                                  // protocol_type
        all(Ty::Structs(&[all(STR), all(BYTES)])), // protocols: name, metadata
        since(8, STR),                             // reason
    ],
};

const SYNC_GROUP: Shape = Shape {
    flexible: 4,
    fields: &[
        all(STR),                                  // group_id
        all(I32),                                  // generation_id
        all(STR),                                  // member_id
        since(3, STR),                             // group_instance_id
        since(5, STR),                             // protocol_type
        since(5, STR),                             // protocol_name
        all(Ty::Structs(&[all(STR), all(BYTES)])), // assignments: member, assignment
    ],
};

const HEARTBEAT: Shape = Shape {
    flexible: 4,
    fields: &[all(STR), all(I32), all(STR), since(3, STR)],
};

const LEAVE_GROUP: Shape = Shape {
    flexible: 4,
    fields: &[
        all(STR),      // group_id
        until(2, STR), // member_id
        since(
            3,
            Ty::Structs(&[all(STR), all(STR), since(5, STR)]), // member, instance, reason
        ),
    ],
};

const OFFSET_COMMIT: Shape = Shape {
    flexible: 8,
    fields: &[
        all(STR),           // group_id
        since(1, I32),      // generation_id
        since(1, STR),      // member_id
        since(7, STR),      // group_instance_id
        between(2, 4, I64), // retention_time_ms
        all(Ty::Structs(&[
            all(STR), // name
            all(Ty::Structs(&[
                all(I32),           // partition_index
                all(I64),           // committed_offset
                since(6, I32),      // committed_leader_epoch
                between(1, 1, I64), // commit_timestamp
                all(STR),           // committed_metadata
            ])),
        ])),
    ],
};

const OFFSET_FETCH: Shape = Shape {
    flexible: 6,
    fields: &[
        until(7, STR),                                   // group_id
        until(7, Ty::Structs(&[all(STR), all(INT32S)])), // topics
        since(
            8,
            Ty::Structs(&[
                all(STR),      // group_id
                since(9, STR), // member_id
                since(9, I32), // member_epoch
                all(Ty::Structs(&[all(STR), all(INT32S)])),
            ]),
        ),
        since(7, BOOL), // require_stable
    ],
};

const DESCRIBE_GROUPS: Shape = Shape {
    flexible: 5,
    fields: &[all(STRINGS), since(3, BOOL)],
};

const LIST_GROUPS: Shape = Shape {
    flexible: 3,
    fields: &[since(4, STRINGS), since(5, STRINGS)], // states, types
};

const DELETE_TOPICS: Shape = Shape {
    flexible: 4,
    fields: &[
        since(6, Ty::Structs(&[all(STR), all(Ty::Fixed(16))])),
        until(5, STRINGS),
        all(I32), // timeout_ms
    ],
};

const CREATE_PARTITIONS: Shape = Shape {
    flexible: 2,
    fields: &[
        all(Ty::Structs(&[
            all(STR),                         // name
            all(I32),                         // count
            all(Ty::Structs(&[all(INT32S)])), // assignments
        ])),
        all(I32),  // timeout_ms
        all(BOOL), // validate_only
    ],
};

const DESCRIBE_CONFIGS: Shape = Shape {
    flexible: 4,
    fields: &[
        all(Ty::Structs(&[all(I8), all(STR), all(STRINGS)])), // type, name, keys
        since(1, BOOL),                                       // include_synonyms
        since(3, BOOL),                                       // include_documentation
    ],
};

const ALTER_CONFIGS: Shape = Shape {
    flexible: 2,
    fields: &[
        all(Ty::Structs(&[
            all(I8),                                 // resource_type
            all(STR),                                // resource_name
            all(Ty::Structs(&[all(STR), all(STR)])), // configs: name, value
        ])),
        all(BOOL), // validate_only
    ],
};

const INCREMENTAL_ALTER_CONFIGS: Shape = Shape {
    flexible: 1,
    fields: &[
        all(Ty::Structs(&[
            all(I8),
            all(STR),
            all(Ty::Structs(&[all(STR), all(I8), all(STR)])), // name, operation, value
        ])),
        all(BOOL),
    ],
};

const SASL_HANDSHAKE: Shape = Shape {
    flexible: i16::MAX,
    fields: &[all(STR)], // mechanism
};

const SASL_AUTHENTICATE: Shape = Shape {
    flexible: 2,
    fields: &[all(BYTES)], // auth_bytes
};

const DELETE_GROUPS: Shape = Shape {
    flexible: 2,
    fields: &[all(STRINGS)],
};

/// The shape of `api`'s requests, for the APIs Blink decodes.
fn shape(api: ApiKey) -> Option<&'static Shape> {
    Some(match api {
        ApiKey::Produce => &PRODUCE,
        ApiKey::Fetch => &FETCH,
        ApiKey::ListOffsets => &LIST_OFFSETS,
        ApiKey::Metadata => &METADATA,
        ApiKey::ApiVersions => &API_VERSIONS,
        ApiKey::CreateTopics => &CREATE_TOPICS,
        ApiKey::InitProducerId => &INIT_PRODUCER_ID,
        ApiKey::FindCoordinator => &FIND_COORDINATOR,
        ApiKey::JoinGroup => &JOIN_GROUP,
        ApiKey::SyncGroup => &SYNC_GROUP,
        ApiKey::Heartbeat => &HEARTBEAT,
        ApiKey::LeaveGroup => &LEAVE_GROUP,
        ApiKey::OffsetCommit => &OFFSET_COMMIT,
        ApiKey::OffsetFetch => &OFFSET_FETCH,
        ApiKey::DescribeGroups => &DESCRIBE_GROUPS,
        ApiKey::ListGroups => &LIST_GROUPS,
        ApiKey::DeleteTopics => &DELETE_TOPICS,
        ApiKey::CreatePartitions => &CREATE_PARTITIONS,
        ApiKey::DescribeConfigs => &DESCRIBE_CONFIGS,
        ApiKey::AlterConfigs => &ALTER_CONFIGS,
        ApiKey::IncrementalAlterConfigs => &INCREMENTAL_ALTER_CONFIGS,
        ApiKey::DeleteGroups => &DELETE_GROUPS,
        ApiKey::SaslHandshake => &SASL_HANDSHAKE,
        ApiKey::SaslAuthenticate => &SASL_AUTHENTICATE,
        _ => return None,
    })
}

/// Checks that `body` (a request after its header) has the shape of `api` at `version`: every
/// length and count fits in the bytes that follow it. Trailing bytes are left to the decoder.
pub fn check(api: ApiKey, version: i16, body: &[u8]) -> Result<(), ShapeError> {
    let Some(shape) = shape(api) else {
        return Err(ShapeError {
            at: 0,
            reason: format!("{api:?} has no known request shape"),
        });
    };
    let mut walk = Walk {
        body,
        at: 0,
        version,
        flexible: version >= shape.flexible,
    };
    walk.fields(shape.fields)
}

/// A cursor over a request body.
struct Walk<'a> {
    body: &'a [u8],
    at: usize,
    version: i16,
    flexible: bool,
}

impl Walk<'_> {
    fn left(&self) -> usize {
        self.body.len() - self.at
    }

    fn fail<T>(&self, reason: impl Into<String>) -> Result<T, ShapeError> {
        Err(ShapeError {
            at: self.at,
            reason: reason.into(),
        })
    }

    fn skip(&mut self, n: usize, what: &str) -> Result<(), ShapeError> {
        if n > self.left() {
            return self.fail(format!(
                "{what} of {n} bytes, with {} bytes left",
                self.left()
            ));
        }
        self.at += n;
        Ok(())
    }

    fn take<const N: usize>(&mut self, what: &str) -> Result<[u8; N], ShapeError> {
        let start = self.at;
        self.skip(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(&self.body[start..start + N]);
        Ok(out)
    }

    /// An unsigned varint of at most 5 bytes (a u32).
    fn uvarint(&mut self) -> Result<u32, ShapeError> {
        let mut value = 0u32;
        for shift in (0..35).step_by(7) {
            let [byte] = self.take::<1>("a varint")?;
            value |= u32::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        self.fail("a varint longer than 5 bytes")
    }

    /// A length or count: `None` for null. Compact lengths are stored plus one, 0 for null.
    fn length(&mut self, wide: bool, what: &str) -> Result<Option<usize>, ShapeError> {
        let n = if self.flexible {
            i64::from(self.uvarint()?) - 1
        } else if wide {
            i64::from(i32::from_be_bytes(self.take::<4>(what)?))
        } else {
            i64::from(i16::from_be_bytes(self.take::<2>(what)?))
        };
        match n {
            -1 => Ok(None),
            n if n < -1 => self.fail(format!("{what} with a negative length ({n})")),
            n => Ok(Some(n as usize)),
        }
    }

    fn fields(&mut self, fields: &[Field]) -> Result<(), ShapeError> {
        let version = self.version;
        for field in fields.iter().filter(|f| f.in_version(version)) {
            self.value(&field.ty)?;
        }
        if self.flexible {
            self.tagged_fields()?;
        }
        Ok(())
    }

    fn value(&mut self, ty: &Ty) -> Result<(), ShapeError> {
        match *ty {
            Ty::Fixed(n) => self.skip(n, "a field"),
            Ty::Str => match self.length(false, "a string")? {
                Some(n) => self.skip(n, "a string"),
                None => Ok(()),
            },
            Ty::Bytes => match self.length(true, "bytes")? {
                Some(n) => self.skip(n, "bytes"),
                None => Ok(()),
            },
            Ty::Array(element) => {
                for _ in 0..self.count()? {
                    self.value(element)?;
                }
                Ok(())
            }
            Ty::Structs(fields) => {
                for _ in 0..self.count()? {
                    self.fields(fields)?;
                }
                Ok(())
            }
        }
    }

    /// An array's element count, refused if the bytes left cannot hold that many elements
    /// (each takes at least one byte).
    fn count(&mut self) -> Result<usize, ShapeError> {
        let n = self.length(true, "an array")?.unwrap_or(0);
        if n > self.left() {
            return self.fail(format!(
                "an array of {n} elements, with {} bytes left",
                self.left()
            ));
        }
        Ok(n)
    }

    fn tagged_fields(&mut self) -> Result<(), ShapeError> {
        let n = self.uvarint()? as usize;
        if n > self.left() {
            return self.fail(format!(
                "{n} tagged fields, with {} bytes left",
                self.left()
            ));
        }
        for _ in 0..n {
            self.uvarint()?; // tag
            let size = self.uvarint()? as usize;
            self.skip(size, "a tagged field")?;
        }
        Ok(())
    }
}

pub(crate) mod sample;
#[cfg(test)]
mod tests;
