//! Face pipeline throughput on the reference portraits: detection, embedding
//! alone (aligned chips), and end to end, on 1 and 2 threads. Prints one JSON
//! line per measurement. Run through `tools/bench/face.sh`, which runs the
//! face_recognition (dlib) peer on the same images in the same run.
//!
//! Env: IPSEITY_MODELS_DIR, IPSEITY_TEST_IMAGES, BENCH_IMAGES (comma list,
//! default obama.jpg), BENCH_EMBED_REPS (default 20).

use ipseity_face::chip::{extract_chips, face_chip_details};
use ipseity_face::decode::{load_image, DecodeLimits};
use ipseity_face::{FaceEngine, Params};
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
    let engine = FaceEngine::from_bytes(
        &read("mmod_human_face_detector.dat"),
        &read("shape_predictor_5_face_landmarks.dat"),
        &read("dlib_face_recognition_resnet_model_v1.dat"),
        Params::default(),
    )
    .expect("models");
    let names = std::env::var("BENCH_IMAGES").unwrap_or_else(|_| "obama.jpg".into());
    let reps: usize = std::env::var("BENCH_EMBED_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let imgs: Vec<_> = names
        .split(',')
        .map(|n| load_image(&images.join(n), &DecodeLimits::default()).expect("image"))
        .collect();
    for threads in [1usize, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("pool");
        pool.install(|| {
            // Detection.
            let t = Instant::now();
            let mut faces = 0;
            let mut dets = vec![];
            for img in &imgs {
                let d = engine.detect(img).expect("detect");
                faces += d.len();
                dets.push(d);
            }
            let det_s = t.elapsed().as_secs_f64();
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
                    std::hint::black_box(engine_embed(&engine, c));
                }
            }
            let emb_s = t.elapsed().as_secs_f64();
            // End to end (detect, landmarks, chip, embed).
            let t = Instant::now();
            let mut e2e_faces = 0;
            for img in &imgs {
                e2e_faces += engine.analyze(img).expect("analyze").len();
            }
            let e2e_s = t.elapsed().as_secs_f64();
            println!(
                "{{\"impl\":\"ipseity\",\"threads\":{threads},\"images\":{},\"faces\":{faces},\"detect_faces_per_s\":{:.4},\"detect_s_per_image\":{:.3},\"embed_faces_per_s\":{:.2},\"end_to_end_faces_per_s\":{:.4},\"peak_rss_mb\":{}}}",
                imgs.len(),
                faces as f64 / det_s,
                det_s / imgs.len() as f64,
                (reps * chips.len()) as f64 / emb_s,
                e2e_faces as f64 / e2e_s,
                peak_rss_kb() / 1024
            );
        });
    }
}

fn engine_embed(engine: &FaceEngine, chip: &ipseity_face::geom::RgbImage) -> Vec<f32> {
    engine.embed_chip(chip).expect("embed")
}
