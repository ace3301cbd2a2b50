//! The reader on hand-assembled legacy files: what a state_dict holds comes
//! back exactly, and malformed or hostile bytes give errors, never panics.
// Opcodes are listed one per byte because each is a separate instruction.
#![allow(clippy::byte_char_slices)]

use ipseity_torch::{read_state_dict, read_state_dict_with, Data, Limits, TorchError};
use proptest::prelude::*;

/// A pickle under construction (protocol 2 opcodes).
#[derive(Default)]
struct P(Vec<u8>);

impl P {
    fn op(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
    fn s(&mut self, text: &str) -> &mut Self {
        self.0.push(b'X');
        self.0.extend_from_slice(&(text.len() as u32).to_le_bytes());
        self.0.extend_from_slice(text.as_bytes());
        self
    }
    fn int(&mut self, v: u8) -> &mut Self {
        self.op(&[b'K', v])
    }
    fn global(&mut self, m: &str, n: &str) -> &mut Self {
        self.0.push(b'c');
        self.0.extend_from_slice(format!("{m}\n{n}\n").as_bytes());
        self
    }
    fn done(&mut self) -> Vec<u8> {
        self.0.push(b'.');
        std::mem::take(&mut self.0)
    }
}

fn header() -> Vec<u8> {
    let mut out = Vec::new();
    // Magic number as LONG1 of ten bytes, then protocol 1001, then sys_info.
    let mut magic = vec![0x80, 2, 0x8a, 10];
    magic.extend_from_slice(&0x1950a86a20f9469cfc6c_i128.to_le_bytes()[..10]);
    magic.push(b'.');
    out.extend(magic);
    out.extend([0x80, 2, b'M', 0xe9, 0x03, b'.']);
    out.extend(
        P::default()
            .op(&[0x80, 2, b'}', b'('])
            .s("little_endian")
            .op(&[0x88, b'u'])
            .done(),
    );
    out
}

/// `{"w": 2x3 float view (transposed strides) of storage "0", "n": int64 scalar of "1"}`.
fn sample() -> Vec<u8> {
    let mut out = header();
    let mut p = P::default();
    p.op(&[0x80, 2])
        .global("collections", "OrderedDict")
        .op(&[b')', b'R', b'('])
        .s("w")
        .global("torch._utils", "_rebuild_tensor_v2")
        .op(&[b'(', b'('])
        .s("storage")
        .global("torch", "FloatStorage")
        .s("0")
        .s("cpu")
        .int(6)
        .op(&[b'N', b't', b'Q'])
        .int(0)
        .int(2)
        .int(3)
        .op(&[0x86])
        .int(1)
        .int(2)
        .op(&[0x86, 0x89])
        .global("collections", "OrderedDict")
        .op(&[b')', b'R', b't', b'R'])
        .s("n")
        .global("torch._utils", "_rebuild_tensor_v2")
        .op(&[b'(', b'('])
        .s("storage")
        .global("torch", "LongStorage")
        .s("1")
        .s("cpu")
        .int(1)
        .op(&[b'N', b't', b'Q'])
        .int(0)
        .op(&[b')', b')', 0x89])
        .global("collections", "OrderedDict")
        .op(&[b')', b'R', b't', b'R', b'u', b'}', b'b']);
    out.extend(p.done());
    out.extend(
        P::default()
            .op(&[0x80, 2, b']', b'('])
            .s("0")
            .s("1")
            .op(b"e")
            .done(),
    );
    out.extend(6i64.to_le_bytes());
    for v in [1f32, 2., 3., 4., 5., 6.] {
        out.extend(v.to_le_bytes());
    }
    out.extend(1i64.to_le_bytes());
    out.extend(42i64.to_le_bytes());
    out
}

#[test]
fn reads_a_state_dict_with_strides() {
    let sd = read_state_dict(&sample()).unwrap();
    let names: Vec<_> = sd.entries.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["w", "n"]);
    let w = sd.get("w").unwrap();
    assert_eq!(w.shape, [2, 3]);
    // Stride (1, 2): element (r, c) is storage[r + 2c].
    assert_eq!(w.data, Data::F32(vec![1., 3., 5., 2., 4., 6.]));
    let n = sd.get("n").unwrap();
    assert!(n.shape.is_empty());
    assert_eq!(n.data, Data::I64(vec![42]));
}

#[test]
fn forbidden_globals_are_named_not_run() {
    let mut bytes = header();
    bytes.extend(
        P::default()
            .op(&[0x80, 2])
            .global("os", "system")
            .s("echo hi")
            .op(&[0x85, b'R'])
            .done(),
    );
    assert_eq!(
        read_state_dict(&bytes),
        Err(TorchError::ForbiddenGlobal {
            module: "os".into(),
            name: "system".into()
        })
    );
}

#[test]
fn a_bare_zip_signature_is_an_error() {
    assert!(read_state_dict(b"PK\x03\x04rest").is_err());
}

#[test]
fn deep_nesting_hits_the_depth_cap() {
    let mut bytes = header();
    let mut p = P::default();
    p.op(&[0x80, 2, b')']);
    for _ in 0..100_000 {
        p.op(&[0x85]);
    }
    bytes.extend(p.done());
    assert_eq!(
        read_state_dict(&bytes),
        Err(TorchError::Limit("nesting depth"))
    );
}

#[test]
fn memo_doubling_stays_cheap() {
    // Each step builds (x, x) from the memo: 2^n leaves if copied, O(1) shared.
    let mut bytes = header();
    let mut p = P::default();
    p.op(&[0x80, 2, b')', b'q', 0]);
    for _ in 0..30 {
        p.op(&[b'h', 0, 0x86, b'q', 0]);
    }
    bytes.extend(p.done());
    let limits = Limits {
        max_depth: 64,
        ..Limits::default()
    };
    // Not a dict, so refused, but only after building the tuple quickly.
    assert!(read_state_dict_with(&bytes, &limits).is_err());
}

#[test]
fn tensor_outside_its_storage_is_refused() {
    let good = sample();
    // Make storage "0" declare 5 elements instead of 6: the view then overruns it.
    let needle = [b'K', 6, b'N', b't', b'Q'];
    let at = good.windows(5).position(|w| w == needle).unwrap();
    let mut bad = good.clone();
    bad[at + 1] = 5;
    assert!(matches!(
        read_state_dict(&bad),
        Err(TorchError::Malformed { .. })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = read_state_dict(&bytes);
    }

    #[test]
    fn truncations_are_errors(cut in 0usize..1000) {
        let good = sample();
        let cut = cut % good.len();
        prop_assert!(read_state_dict(&good[..cut]).is_err());
    }

    #[test]
    fn mutated_files_never_panic(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)
    ) {
        let mut bytes = sample();
        let len = bytes.len();
        for (at, b) in edits {
            bytes[at % len] = b;
        }
        let _ = read_state_dict(&bytes);
    }

    #[test]
    fn random_opcodes_after_a_valid_header_never_panic(
        body in proptest::collection::vec(
            prop_oneof![
                Just(b'('), Just(b')'), Just(b't'), Just(0x85u8), Just(0x86), Just(b']'),
                Just(b'a'), Just(b'e'), Just(b'}'), Just(b's'), Just(b'u'), Just(b'N'),
                Just(b'R'), Just(b'b'), Just(b'Q'), Just(b'h'), Just(b'q'), Just(b'.'),
                Just(0), Just(1), Just(0x88)
            ],
            0..200,
        )
    ) {
        let mut bytes = header();
        bytes.extend([0x80, 2]);
        bytes.extend(body);
        let _ = read_state_dict(&bytes);
    }
}

fn tiny_zip() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/tiny_zip.pt"
    ))
    .expect("test data")
}

#[test]
fn reads_a_zip_format_state_dict() {
    let sd = read_state_dict(&tiny_zip()).unwrap();
    let names: Vec<_> = sd.entries.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["w", "b", "n"]);
    let w = sd.get("w").unwrap();
    assert_eq!(w.shape, [3, 2]);
    // The transpose of [[0, 1, 2], [3, 4, 5]].
    assert_eq!(w.data, Data::F32(vec![0., 3., 1., 4., 2., 5.]));
    assert_eq!(sd.get("b").unwrap().data, Data::F32(vec![1.5, -2.0]));
    assert_eq!(sd.get("n").unwrap().data, Data::I64(vec![7]));
}

#[test]
fn a_zip_with_damaged_data_fails_its_crc() {
    let mut bytes = tiny_zip();
    // The first float of storage 0 follows the 64-byte aligned local header of data/0.
    let at = bytes
        .windows(15)
        .position(|w| w == b"tiny_zip/data/0")
        .map(|p| p + 15)
        .unwrap();
    let data_at = (at..bytes.len()).find(|i| i % 64 == 0).unwrap();
    bytes[data_at] ^= 1;
    assert!(read_state_dict(&bytes).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn mutated_zips_never_panic(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
    ) {
        let mut bytes = tiny_zip();
        let len = bytes.len();
        for (at, b) in edits {
            bytes[at % len] = b;
        }
        let _ = read_state_dict(&bytes);
        bytes.truncate(cut % len);
        prop_assert!(read_state_dict(&bytes).is_err());
    }
}
