//! Writes a few synthetic masters and impressions as PNG files for a person to look at:
//! `cargo run --release -p ipseity-finger --example synth_preview -- OUT_DIR [FINGERS] [SEED]`.
//! With `-` as OUT_DIR nothing is written and the example only times the generator, on the
//! calling thread: `synth_preview - [FINGERS] [SEED] [IMPRESSIONS_PER_FINGER (8)]`.

use ipseity_finger::synth::{self, SynthConfig};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(
        args.next()
            .ok_or("usage: synth_preview OUT_DIR [FINGERS] [SEED]")?,
    );
    let fingers: u32 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(4);
    let seed: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1);
    let per_finger: u32 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(8);
    let cfg = SynthConfig::default();
    if dir.as_os_str() == "-" {
        let (mut tm, mut ti, mut n) = (0.0, 0.0, 0usize);
        for f in 0..fingers {
            let t = Instant::now();
            let m = synth::master(&cfg, seed, f);
            tm += t.elapsed().as_secs_f64();
            n += m.minutiae.len();
            let t = Instant::now();
            for i in 0..per_finger {
                std::hint::black_box(synth::impression(&cfg, &m, seed, f, i));
            }
            ti += t.elapsed().as_secs_f64();
        }
        let k = f64::from(fingers.max(1));
        println!(
            "{fingers} fingers: master {:.1} ms, impression {:.1} ms, {:.1} minutiae per master",
            tm / k * 1e3,
            ti / k / f64::from(per_finger.max(1)) * 1e3,
            n as f64 / k
        );
        return Ok(());
    }
    std::fs::create_dir_all(&dir)?;
    for f in 0..fingers {
        let t = Instant::now();
        let m = synth::master(&cfg, seed, f);
        let tm = t.elapsed();
        let mut img = image::RgbImage::from_fn(m.image.width(), m.image.height(), |x, y| {
            let g = m.image.get_pixel(x, y).0[0];
            image::Rgb([g, g, g])
        });
        for mi in &m.minutiae {
            mark(&mut img, mi, [255, 0, 0], [0, 160, 255]);
        }
        img.save(dir.join(format!("f{f:03}_master.png")))?;
        zoom(&m, 3).save(dir.join(format!("f{f:03}_master_zoom.png")))?;
        let t = Instant::now();
        let imp: Vec<_> = (0..2)
            .map(|i| synth::impression(&cfg, &m, seed, f, i))
            .collect();
        let ti = t.elapsed() / 2;
        for (i, imp) in imp.iter().enumerate() {
            imp.image.save(dir.join(format!("f{f:03}_{i}.png")))?;
            let mut img =
                image::RgbImage::from_fn(imp.image.width(), imp.image.height(), |x, y| {
                    let g = imp.image.get_pixel(x, y).0[0];
                    image::Rgb([g, g, g])
                });
            for mi in &imp.minutiae {
                mark(&mut img, mi, [255, 0, 0], [0, 160, 255]);
            }
            img.save(dir.join(format!("f{f:03}_{i}_truth.png")))?;
            std::fs::write(
                dir.join(format!("f{f:03}_{i}.json")),
                serde_json::to_string_pretty(&imp.minutiae).unwrap_or_default(),
            )?;
        }
        println!(
            "finger {f}: {:?}, {} minutiae, master {:.1} ms, impression {:.1} ms",
            m.class,
            m.minutiae.len(),
            tm.as_secs_f64() * 1e3,
            ti.as_secs_f64() * 1e3
        );
    }
    Ok(())
}

/// Draws a minutia: a small square and a 10-pixel tick along its direction.
fn mark(img: &mut image::RgbImage, m: &ipseity_finger::Minutia, ending: [u8; 3], bif: [u8; 3]) {
    let c = if m.kind == ipseity_finger::MinutiaKind::Ending {
        ending
    } else {
        bif
    };
    let mut put = |x: f32, y: f32| {
        let (x, y) = (x.round() as i64, y.round() as i64);
        if x >= 0 && y >= 0 && (x as u32) < img.width() && (y as u32) < img.height() {
            img.put_pixel(x as u32, y as u32, image::Rgb(c));
        }
    };
    for d in -2..=2 {
        put(m.x + d as f32, m.y - 2.0);
        put(m.x + d as f32, m.y + 2.0);
        put(m.x - 2.0, m.y + d as f32);
        put(m.x + 2.0, m.y + d as f32);
    }
    for t in 0..24 {
        put(
            m.x + t as f32 * m.angle.cos(),
            m.y - t as f32 * m.angle.sin(),
        );
    }
}

/// The central 140x140 pixels of a master, enlarged `k` times, with its minutiae, to check
/// positions and directions by eye.
fn zoom(m: &synth::Master, k: u32) -> image::RgbImage {
    let side = 140u32;
    let x0 = (m.shape.cx as u32).saturating_sub(side / 2);
    let y0 = (m.shape.cy as u32).saturating_sub(side / 2);
    let mut img = image::RgbImage::from_fn(side * k, side * k, |x, y| {
        let (sx, sy) = (x0 + x / k, y0 + y / k);
        let g = if sx < m.image.width() && sy < m.image.height() {
            m.image.get_pixel(sx, sy).0[0] / 2 + 100
        } else {
            255
        };
        image::Rgb([g, g, g])
    });
    for mi in &m.minutiae {
        let mut z = *mi;
        z.x = (mi.x - x0 as f32) * k as f32 + k as f32 / 2.0;
        z.y = (mi.y - y0 as f32) * k as f32 + k as f32 / 2.0;
        for t in 0..3 {
            let mut zt = z;
            zt.x += t as f32 * 0.7;
            mark(&mut img, &zt, [255, 0, 0], [0, 160, 255]);
        }
    }
    img
}
