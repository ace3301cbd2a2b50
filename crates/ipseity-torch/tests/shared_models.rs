//! The two MiniFASNet checkpoints from `../shared/models` read completely.

use std::path::{Path, PathBuf};

fn shared_model(name: &str) -> Option<Vec<u8>> {
    let file = std::env::var_os("IPSEITY_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
        .join("models/silent_face_anti_spoofing/resources/anti_spoof_models")
        .join(name);
    match std::fs::read(&file) {
        Ok(b) => Some(b),
        Err(_) => {
            assert!(
                std::env::var_os("IPSEITY_REQUIRE_SHARED").is_none(),
                "IPSEITY_REQUIRE_SHARED is set but {} is missing",
                file.display()
            );
            eprintln!("skipped: no model at {}", file.display());
            None
        }
    }
}

#[test]
fn minifasnet_checkpoints_read() {
    for (name, entries) in [
        ("2.7_80x80_MiniFASNetV2.pth", 334),
        ("4_0_0_80x80_MiniFASNetV1SE.pth", 370),
    ] {
        let Some(bytes) = shared_model(name) else {
            return;
        };
        let sd = ipseity_torch::read_state_dict(&bytes).unwrap();
        assert_eq!(sd.entries.len(), entries, "{name}");
        let w = sd.get("module.conv1.conv.weight").unwrap();
        assert_eq!(w.shape, [32, 3, 3, 3]);
        let prob = sd.get("module.prob.weight").unwrap();
        assert_eq!(prob.shape, [3, 128]);
        assert!(prob.to_f32().unwrap().iter().all(|v| v.is_finite()));
    }
}
