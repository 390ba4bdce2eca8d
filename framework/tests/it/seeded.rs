//! Seeded inputs for the tests that feed the decoders and the connection what a fuzzer would:
//! one generator and one mutator, so that every such test wanders the same way.

/// splitmix64: tiny, seeded, and good enough to wander through the decoders' branches.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    pub(crate) fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }

    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// `input` changed in one to three ways, as a fuzzer would change it.
pub(crate) fn mutate(rng: &mut Rng, input: &[u8], others: &[Vec<u8>]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(3) {
        match rng.below(8) {
            0 if !out.is_empty() => {
                let bit = rng.below(out.len() * 8);
                out[bit / 8] ^= 1 << (bit % 8);
            }
            1 => out.truncate(rng.below(out.len() + 1)),
            2 => {
                let extra = rng.below(40);
                out.extend(rng.bytes(extra));
            }
            // A length field (24-bit metadata length, 16-bit token, 8-bit MIME length, or the
            // transport prefix) made short, long or huge.
            3 if out.len() >= 3 => {
                let at = rng.below(out.len() - 2);
                let value: [u8; 3] =
                    *rng.pick(&[[0xFF, 0xFF, 0xFF], [0, 0, 0], [0, 0, 6], [0x7F, 0xFF, 0xFF], [0, 1, 0]]);
                out[at..at + 3].copy_from_slice(&value);
            }
            4 if !out.is_empty() => {
                let at = rng.below(out.len());
                out[at] = rng.next() as u8;
            }
            // Splice: this input's head with another's tail.
            5 => {
                let other = rng.pick(others);
                let cut = rng.below(out.len() + 1);
                let from = rng.below(other.len() + 1);
                out.truncate(cut);
                out.extend_from_slice(&other[from..]);
            }
            6 => {
                let at = rng.below(out.len() + 1);
                out.insert(at, rng.next() as u8);
            }
            _ if !out.is_empty() => {
                out.remove(rng.below(out.len()));
            }
            _ => {}
        }
    }
    out
}

/// `bytes` in hex, for a failing input's message.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
