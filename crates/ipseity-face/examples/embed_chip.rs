//! Developer check: embed a 150x150 chip PNG and print the vector as JSON.
use ipseity_face::{embed::Embedder, geom::RgbImage};
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bytes = std::fs::read(&args[1]).expect("model");
    let net =
        ipseity_dlib::read_net(&bytes, &ipseity_dlib::resnet_embedding_slots()).expect("parse");
    let e = Embedder::new(net).expect("net");
    let img = image::open(&args[2]).expect("img").to_rgb8();
    let chip = RgbImage::from_raw(img.width() as usize, img.height() as usize, img.into_raw())
        .expect("raw");
    let t = std::time::Instant::now();
    let v = e.embed(&chip).expect("embed");
    eprintln!("{:?}", t.elapsed());
    println!("{:?}", v);
}
