//! Cost of presentation-attack detection per face: both MiniFASNet models
//! (crop, resize, network) on a sample photo's detected face.
//!
//! `liveness_cost MODELS_DIR PTH_DIR IMAGE [RUNS]` with dlib's models in
//! MODELS_DIR and the two `.pth` files in PTH_DIR. Prints the median and
//! minimum per face, and the share spent outside the networks.

use std::time::Instant;

use ipseity_face::decode::{load_image, DecodeLimits};
use ipseity_face::liveness::{self, Liveness, MiniFasNet, INPUT_SIDE, MODELS};
use ipseity_face::{FaceEngine, Params};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, models, pth, image, rest @ ..] = args.as_slice() else {
        return Err("usage: liveness_cost MODELS_DIR PTH_DIR IMAGE [RUNS]".into());
    };
    let runs: usize = rest.first().map(|r| r.parse()).transpose()?.unwrap_or(50);
    let read = |d: &str, n: &str| std::fs::read(std::path::Path::new(d).join(n));
    let engine = FaceEngine::from_bytes(
        &read(models, "mmod_human_face_detector.dat")?,
        &read(models, "shape_predictor_5_face_landmarks.dat")?,
        &read(models, "dlib_face_recognition_resnet_model_v1.dat")?,
        Params::default(),
    )?;
    let t = Instant::now();
    let nets = MODELS
        .iter()
        .map(|(name, scale)| MiniFasNet::from_pth(&read(pth, name)?, *scale).map_err(Into::into))
        .collect::<Result<Vec<_>, Box<dyn std::error::Error>>>()?;
    let load_ms = t.elapsed().as_secs_f64() * 1e3;
    let engine = engine.with_liveness(Liveness {
        models: nets.clone(),
    });
    let img = load_image(std::path::Path::new(image), &DecodeLimits::default())?;
    let rect = engine.detect(&img)?.first().ok_or("no face")?.rect;

    let mut per_face = Vec::with_capacity(runs);
    let mut score = None;
    for _ in 0..runs + 3 {
        let t = Instant::now();
        score = Some(engine.assess_liveness(&img, rect)?);
        per_face.push(t.elapsed().as_secs_f64() * 1e3);
    }
    per_face.drain(..3);
    per_face.sort_by(f64::total_cmp);
    let mut crop_ms = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        for (_, scale) in MODELS {
            std::hint::black_box(liveness::crop(&img, rect, scale, INPUT_SIDE)?);
        }
        crop_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    crop_ms.sort_by(f64::total_cmp);
    println!(
        "{}x{} image, face {}x{}, {} threads, {runs} runs",
        img.width,
        img.height,
        rect.width(),
        rect.height(),
        rayon::current_num_threads()
    );
    println!("models load: {load_ms:.1} ms (both)");
    println!(
        "per face (2 models): median {:.2} ms, min {:.2} ms; crops+resize {:.3} ms",
        per_face[runs / 2],
        per_face[0],
        crop_ms[runs / 2]
    );
    println!("score: {:?}", score.ok_or("no run")?);
    Ok(())
}
