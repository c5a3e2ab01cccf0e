//! Random requests of every shape: for the tests (every built request must decode exactly)
//! and for the fuzzers (structurally valid frames reach deep into the handlers).

use kafka_protocol::messages::ApiKey;

use super::{Field, Ty, shape};

/// A small deterministic generator (xorshift), so a failure names a reproducible seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Builds a random frame body of `shape` at `version`. With `huge` set to `Some(k)`, the k-th
/// array written claims 2^31 - 1 elements (and stops there).
struct Build<'r> {
    rng: &'r mut Rng,
    out: Vec<u8>,
    version: i16,
    flexible: bool,
    arrays: usize,
    huge: Option<usize>,
    done: bool,
}

impl Build<'_> {
    fn uvarint(&mut self, mut v: u32) {
        while v >= 0x80 {
            self.out.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.out.push(v as u8);
    }

    fn length(&mut self, n: usize, wide: bool) {
        if self.flexible {
            self.uvarint(n as u32 + 1);
        } else if wide {
            self.out.extend_from_slice(&(n as i32).to_be_bytes());
        } else {
            self.out.extend_from_slice(&(n as i16).to_be_bytes());
        }
    }

    fn fields(&mut self, fields: &[Field]) {
        let version = self.version;
        for field in fields.iter().filter(|f| f.in_version(version)) {
            if self.done {
                return;
            }
            self.value(&field.ty);
        }
        if self.flexible && !self.done {
            if self.rng.below(4) == 0 {
                // One unknown tagged field: its tag is beyond any the decoder knows.
                let size = self.rng.below(4) as usize;
                self.uvarint(1);
                let tag = 1000 + self.rng.below(100) as u32;
                self.uvarint(tag);
                self.uvarint(size as u32);
                self.out.extend(std::iter::repeat_n(0x5a, size));
            } else {
                self.uvarint(0);
            }
        }
    }

    fn value(&mut self, ty: &Ty) {
        match *ty {
            // One-byte fields are booleans or small enums: 0 and 1 are valid for all of them.
            Ty::Fixed(1) => {
                let byte = self.rng.below(2) as u8;
                self.out.push(byte);
            }
            Ty::Fixed(n) => {
                for _ in 0..n {
                    let byte = self.rng.below(256) as u8;
                    self.out.push(byte);
                }
            }
            Ty::Str => {
                let n = self.rng.below(6) as usize;
                self.length(n, false);
                for _ in 0..n {
                    let letter = b'a' + self.rng.below(26) as u8;
                    self.out.push(letter);
                }
            }
            Ty::Bytes => {
                let n = self.rng.below(6) as usize;
                self.length(n, true);
                for _ in 0..n {
                    let byte = self.rng.below(256) as u8;
                    self.out.push(byte);
                }
            }
            Ty::Array(_) | Ty::Structs(_) => {
                let k = self.arrays;
                self.arrays += 1;
                if self.huge == Some(k) {
                    if self.flexible {
                        self.uvarint(i32::MAX as u32);
                    } else {
                        self.out.extend_from_slice(&i32::MAX.to_be_bytes());
                    }
                    self.done = true;
                    return;
                }
                let n = self.rng.below(3) as usize;
                self.length(n, true);
                for _ in 0..n {
                    if self.done {
                        return;
                    }
                    match *ty {
                        Ty::Array(element) => self.value(element),
                        Ty::Structs(fields) => self.fields(fields),
                        _ => unreachable!(),
                    }
                }
            }
        }
    }
}

pub fn build(api: ApiKey, version: i16, rng: &mut Rng, huge: Option<usize>) -> (Vec<u8>, bool) {
    let shape = shape(api).unwrap();
    let mut b = Build {
        rng,
        out: Vec::new(),
        version,
        flexible: version >= shape.flexible,
        arrays: 0,
        huge,
        done: false,
    };
    b.fields(shape.fields);
    (b.out, b.done)
}
