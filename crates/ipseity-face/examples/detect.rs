//! Developer check: run the detector on an image and print boxes as JSON lines.
use ipseity_face::{detect::Detector, geom::RgbImage};
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bytes = std::fs::read(&args[1]).expect("model");
    let net = ipseity_dlib::read_net(&bytes, &ipseity_dlib::mmod_detector_slots()).expect("parse");
    let d = Detector::new(net).expect("net");
    for f in &args[2..] {
        let img = image::open(f).expect("img").to_rgb8();
        let img = RgbImage::from_raw(img.width() as usize, img.height() as usize, img.into_raw())
            .expect("raw");
        let t = std::time::Instant::now();
        let dets = d.detect(&img, 1).expect("detect");
        eprintln!("{f} {}x{} {:?}", img.width, img.height, t.elapsed());
        for x in dets {
            println!("{f} {:?} {}", x.rect, x.confidence);
        }
    }
}
