//! The measurement behind the convolution engine choice: the same im2col
//! layout and the same networks, with the matrix product done by `gemm`, by
//! `matrixmultiply`, by our per-shape choice of the two (the default), and by a
//! plain triple loop, on 1 and 2 threads.
//! Prints one JSON line per (network, engine, threads).
//!
//! Env: IPSEITY_MODELS_DIR. Run: `cargo bench -p ipseity-face --bench conv_engines`.

use ipseity_face::cnn::{forward_with, matmul_auto, matmul_mm, matmul_serial, MatmulFn, Tensor};
use std::path::PathBuf;
use std::time::Instant;

fn mm_naive(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    for i in 0..m {
        let row = &mut c[i * n..(i + 1) * n];
        row.fill(0.0);
        for p in 0..k {
            let av = a[i * k + p];
            for (cv, bv) in row.iter_mut().zip(&b[p * n..(p + 1) * n]) {
                *cv += av * bv;
            }
        }
    }
}

fn input(k: usize, h: usize, w: usize) -> Tensor {
    let mut t = Tensor::zeros(k, h, w);
    for (i, v) in t.data.iter_mut().enumerate() {
        *v = ((i * 7919) % 251) as f32 / 251.0 - 0.5;
    }
    t
}

fn main() {
    let Some(models) = std::env::var_os("IPSEITY_MODELS_DIR").map(PathBuf::from) else {
        eprintln!("set IPSEITY_MODELS_DIR");
        return;
    };
    let resnet = ipseity_dlib::read_net(
        &std::fs::read(models.join("dlib_face_recognition_resnet_model_v1.dat")).expect("model"),
        &ipseity_dlib::resnet_embedding_slots(),
    )
    .expect("resnet");
    let mmod = ipseity_dlib::read_net(
        &std::fs::read(models.join("mmod_human_face_detector.dat")).expect("model"),
        &ipseity_dlib::mmod_detector_slots(),
    )
    .expect("mmod");
    let engines: [(&str, MatmulFn); 4] = [
        ("im2col+auto (default)", matmul_auto),
        ("im2col+gemm", matmul_serial),
        ("im2col+matrixmultiply", matmul_mm),
        ("im2col+naive", mm_naive),
    ];
    for threads in [1usize, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("pool");
        for (name, mm) in engines {
            pool.install(|| {
                // ResNet embedding on one 150x150 chip.
                let reps = if name == "im2col+naive" { 2 } else { 40 };
                let x = input(3, 150, 150);
                let t = Instant::now();
                for _ in 0..reps {
                    std::hint::black_box(forward_with(&resnet.layers, x.clone(), mm).expect("fwd"));
                }
                let per = t.elapsed().as_secs_f64() / reps as f64;
                println!(
                    "{{\"net\":\"resnet-150x150\",\"engine\":\"{name}\",\"threads\":{threads},\"ms\":{:.2}}}",
                    per * 1e3
                );
                // MMOD detector on a 640x480 tensor (a VGA frame without the pyramid).
                let x = input(3, 480, 640);
                let reps = if name == "im2col+naive" { 1 } else { 12 };
                let t = Instant::now();
                for _ in 0..reps {
                    std::hint::black_box(forward_with(&mmod.layers, x.clone(), mm).expect("fwd"));
                }
                let per = t.elapsed().as_secs_f64() / reps as f64;
                println!(
                    "{{\"net\":\"mmod-640x480\",\"engine\":\"{name}\",\"threads\":{threads},\"ms\":{:.1}}}",
                    per * 1e3
                );
            });
        }
    }
}
