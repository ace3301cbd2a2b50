//! Writes the synthetic benchmark gallery and probes as `.npy` files, so peer
//! engines (faiss, usearch) are measured on exactly the vectors Ipseity sees.
//!
//! `cargo run --release -p ipseity-index --example export_gallery -- N DIM QUERIES OUT_DIR`

use ipseity_index::synth::{gallery, probes, SynthParams};
use std::io::Write;

fn write_npy(
    path: &std::path::Path,
    rows: usize,
    cols: usize,
    data: &[f32],
) -> std::io::Result<()> {
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // Magic (6) + version (2) + length (2) + header + '\n' is a multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    f.write_all(b"\x93NUMPY\x01\x00")?;
    f.write_all(&(header.len() as u16).to_le_bytes())?;
    f.write_all(header.as_bytes())?;
    for x in data {
        f.write_all(&x.to_le_bytes())?;
    }
    f.flush()
}

fn main() -> std::io::Result<()> {
    let a: Vec<String> = std::env::args().collect();
    let get = |i: usize, d: usize| a.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let (n, dim, nq) = (get(1, 100_000), get(2, 128), get(3, 1000));
    let out = std::path::PathBuf::from(a.get(4).cloned().unwrap_or_else(|| ".".into()));
    std::fs::create_dir_all(&out)?;
    let p = SynthParams::new(n, dim);
    let g = gallery(&p);
    // Same probe seed as the `search` bench.
    let (qs, _) = probes(&g, &p, nq, 0x9e37);
    write_npy(
        &out.join(format!("gallery_{n}_{dim}.npy")),
        n,
        dim,
        &g.vectors,
    )?;
    write_npy(&out.join(format!("queries_{n}_{dim}.npy")), nq, dim, &qs)?;
    eprintln!(
        "wrote {} rows and {nq} probes of dimension {dim} to {}",
        g.len(),
        out.display()
    );
    Ok(())
}
