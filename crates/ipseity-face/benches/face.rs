//! Face pipeline throughput on the reference portraits, for each detector mode
//! (`exact`: face_recognition's upsampling; `cooperative`: the default):
//! detection, embedding alone (aligned chips), end to end, and a whole
//! verification from the file (decode, detect, landmarks, chip, embedding:
//! median of BENCH_VERIFY_REPS runs per image), on 1 and 2 threads. Prints one
//! JSON line per measurement. Run through `tools/bench/face.sh`, which runs the
//! face_recognition (dlib) peer on the same images in the same run.
//!
//! Env: IPSEITY_MODELS_DIR, IPSEITY_TEST_IMAGES, BENCH_IMAGES (comma list,
//! default obama.jpg), BENCH_EMBED_REPS (default 20).

use ipseity_face::chip::{extract_chips, face_chip_details};
use ipseity_face::decode::{load_image, DecodeLimits};
use ipseity_face::{DetectorMode, FaceEngine, Params};
use std::path::PathBuf;
use std::time::Instant;

fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn main() {
    let (Some(models), Some(images)) = (
        std::env::var_os("IPSEITY_MODELS_DIR").map(PathBuf::from),
        std::env::var_os("IPSEITY_TEST_IMAGES").map(PathBuf::from),
    ) else {
        eprintln!("set IPSEITY_MODELS_DIR and IPSEITY_TEST_IMAGES (tools/bench/face.sh does)");
        return;
    };
    let read = |n: &str| std::fs::read(models.join(n)).expect("model file");
    let (det, lm, emb) = (
        read("mmod_human_face_detector.dat"),
        read("shape_predictor_5_face_landmarks.dat"),
        read("dlib_face_recognition_resnet_model_v1.dat"),
    );
    let names = std::env::var("BENCH_IMAGES").unwrap_or_else(|_| "obama.jpg".into());
    let reps: usize = std::env::var("BENCH_EMBED_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let verify_reps: usize = std::env::var("BENCH_VERIFY_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(9)
        .max(1);
    let paths: Vec<PathBuf> = names.split(',').map(|n| images.join(n)).collect();
    let imgs: Vec<_> = paths
        .iter()
        .map(|p| load_image(p, &DecodeLimits::default()).expect("image"))
        .collect();
    let modes = std::env::var("BENCH_MODES").unwrap_or_else(|_| "exact,cooperative".into());
    for mode in modes.split(',') {
        let mode: DetectorMode = mode.parse().expect("BENCH_MODES");
        let engine = FaceEngine::from_bytes(
            &det,
            &lm,
            &emb,
            Params {
                detector: mode,
                ..Params::default()
            },
        )
        .expect("models");
        // As `enroll` and `verify` run by default: with presentation-attack detection,
        // when its models are installed beside the face models.
        let live = [
            "2.7_80x80_MiniFASNetV2.pth",
            "4_0_0_80x80_MiniFASNetV1SE.pth",
        ]
        .map(|n| std::fs::read(models.join(n)).ok());
        let engine = match live {
            [Some(v2), Some(v1se)] => engine.with_liveness(
                ipseity_face::liveness::Liveness::from_pth(&v2, &v1se).expect("liveness models"),
            ),
            _ => engine,
        };
        for threads in [1usize, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("pool");
            pool.install(|| measure(&engine, mode, threads, &imgs, &paths, reps, verify_reps));
        }
    }
}

fn measure(
    engine: &FaceEngine,
    mode: DetectorMode,
    threads: usize,
    imgs: &[ipseity_face::geom::RgbImage],
    paths: &[PathBuf],
    reps: usize,
    verify_reps: usize,
) {
    // Detection: the first pass over the images (cold), then the median of
    // further runs per image (warm: the engine's buffers exist).
    let t = Instant::now();
    let mut faces = 0;
    let mut dets = vec![];
    for img in imgs {
        let d = engine.detect(img).expect("detect");
        faces += d.len();
        dets.push(d);
    }
    let det_s = t.elapsed().as_secs_f64();
    let detect_ms: Vec<String> = imgs
        .iter()
        .map(|img| {
            let mut runs: Vec<f64> = (0..verify_reps)
                .map(|_| {
                    let t = Instant::now();
                    std::hint::black_box(engine.detect(img).expect("detect"));
                    t.elapsed().as_secs_f64() * 1e3
                })
                .collect();
            runs.sort_by(f64::total_cmp);
            format!("{:.1}", runs[runs.len() / 2])
        })
        .collect();
    // Embedding alone: the aligned chips, embedded `reps` times.
    let mut chips = vec![];
    for (img, d) in imgs.iter().zip(&dets) {
        let a = engine.analyze_detections(img, d).expect("analyze");
        let details: Vec<_> = a
            .iter()
            .map(|f| face_chip_details(&f.landmarks, 150, 0.25))
            .collect();
        chips.extend(extract_chips(img, &details));
    }
    let t = Instant::now();
    for _ in 0..reps {
        for c in &chips {
            std::hint::black_box(engine_embed(engine, c));
        }
    }
    let emb_s = t.elapsed().as_secs_f64();
    // End to end (detect, landmarks, chip, embed) on decoded images.
    let t = Instant::now();
    let mut e2e_faces = 0;
    for img in imgs {
        e2e_faces += engine.analyze(img).expect("analyze").len();
    }
    let e2e_s = t.elapsed().as_secs_f64();
    // A whole verification's face work, from the file: decode, then the one face (with
    // `live`, checked for presentation attacks as `verify` does by default). The median
    // of the runs per image.
    let verify_median_ms = |live: bool| -> Vec<String> {
        paths
            .iter()
            .map(|p| {
                let mut runs: Vec<f64> = (0..verify_reps)
                    .map(|_| {
                        let t = Instant::now();
                        let img = load_image(p, &DecodeLimits::default()).expect("image");
                        let face = if live {
                            engine.live_face(&img, true)
                        } else {
                            engine.single_face(&img, true)
                        };
                        std::hint::black_box(face.expect("face"));
                        t.elapsed().as_secs_f64() * 1e3
                    })
                    .collect();
                runs.sort_by(f64::total_cmp);
                format!("{:.1}", runs[runs.len() / 2])
            })
            .collect()
    };
    let verify_ms = verify_median_ms(false);
    let live_ms = if engine.has_liveness() {
        verify_median_ms(true)
    } else {
        vec![]
    };
    println!(
        "{{\"impl\":\"ipseity\",\"mode\":\"{}\",\"threads\":{threads},\"images\":{},\"faces\":{faces},\"detect_faces_per_s\":{:.4},\"detect_ms_per_image\":{:.1},\"detect_median_ms\":[{}],\"embed_faces_per_s\":{:.2},\"end_to_end_faces_per_s\":{:.4},\"verify_median_ms\":[{}],\"verify_with_liveness_median_ms\":[{}],\"peak_rss_mb\":{}}}",
        serde_json_mode(mode),
        imgs.len(),
        faces as f64 / det_s,
        det_s * 1e3 / imgs.len() as f64,
        detect_ms.join(","),
        (reps * chips.len()) as f64 / emb_s,
        e2e_faces as f64 / e2e_s,
        verify_ms.join(","),
        live_ms.join(","),
        peak_rss_kb() / 1024
    );
}

fn serde_json_mode(mode: DetectorMode) -> &'static str {
    match mode {
        DetectorMode::Cooperative => "cooperative",
        DetectorMode::Exact => "exact",
    }
}

fn engine_embed(engine: &FaceEngine, chip: &ipseity_face::geom::RgbImage) -> Vec<f32> {
    engine.embed_chip(chip).expect("embed")
}
