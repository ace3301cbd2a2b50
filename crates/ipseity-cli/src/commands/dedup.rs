//! `ipseity dedup`: all-against-all search for subjects enrolled twice.
//!
//! Every template is a probe against the whole gallery; the index serves
//! blocks of probes in one pass (`search_batch`) and, as for `identify`, only
//! proposes candidates: each pair is decided on the decision similarity over
//! all templates of both subjects, so the pairs are those a scan of every
//! template pair would give (see `crate::gallery`). A pair's decision is the
//! best over its template pairs. Pairs at or above `--threshold` are linked,
//! and clusters are the connected components of those links. Only decisions
//! are reported, never scores. Exit 0 when nothing is found, 1 otherwise.
//!
//! With `--embeddings FILE.f32 --dim D` the gallery is a raw little-endian
//! f32 file (row `i` is subject `i`) and the store is not opened: a way to
//! run and time the command on synthetic galleries. The file must be a
//! regular file of at most [`MAX_EMBEDDINGS_BYTES`].

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use ipseity_core::{AuditEvent, Decision, OperatingPoint};
use serde::Serialize;

use crate::args::{DedupArgs, DedupThreshold, PairFormat};
use crate::context::Ctx;
use crate::error::{CliError, ExitStatus};
use crate::files;
use crate::output::Render;
use crate::policy::PolicyReport;
use ipseity_engine::gallery::{FaceGallery, Gallery, FACE_DIM, MIN_DEPTH};

/// Probes per `search_batch` call (and per progress-bar step).
const BLOCK: usize = 1024;

/// Largest `--embeddings` file read: 16 GiB, e.g. 32 million 128-D rows. The
/// file is held in memory twice while it is converted, and the index adds its
/// own copy, so this is already more than most machines hold; the bound is
/// there so that a wrong path (a device, a huge unrelated file) fails at once.
const MAX_EMBEDDINGS_BYTES: u64 = 16 << 30;

#[derive(Serialize)]
struct Pair {
    subject_a: String,
    subject_b: String,
    decision: Decision,
    cluster: usize,
}

#[derive(Serialize)]
struct Cluster {
    cluster: usize,
    subjects: Vec<String>,
}

#[derive(Serialize)]
struct Found {
    pairs: Vec<Pair>,
    clusters: Vec<Cluster>,
}

#[derive(Serialize)]
struct Summary {
    subjects: usize,
    templates: usize,
    pairs: usize,
    clusters: usize,
    subjects_in_clusters: usize,
    index_build_s: f64,
    search_s: f64,
}

#[derive(Serialize)]
struct DedupReport {
    threshold: Decision,
    /// Pairs and clusters, unless they went to `--out`.
    #[serde(flatten)]
    found: Option<Found>,
    #[serde(skip_serializing_if = "Option::is_none")]
    out: Option<PathBuf>,
    summary: Summary,
    operating_point: PolicyReport,
}

impl Render for DedupReport {
    fn render_text(&self, w: &mut dyn Write) -> io::Result<()> {
        if let Some(f) = &self.found {
            for p in &f.pairs {
                writeln!(
                    w,
                    "{}  {}  {}  (cluster {})",
                    p.subject_a, p.subject_b, p.decision, p.cluster
                )?;
            }
            for c in &f.clusters {
                writeln!(w, "cluster {}: {}", c.cluster, c.subjects.join(", "))?;
            }
        }
        if let Some(out) = &self.out {
            writeln!(w, "pairs and clusters written to {}", out.display())?;
        }
        let s = &self.summary;
        writeln!(
            w,
            "{} candidate duplicate pair(s) in {} cluster(s) ({} subjects) at {} or above, \
             among {} subjects ({} templates)",
            s.pairs, s.clusters, s.subjects_in_clusters, self.threshold, s.subjects, s.templates
        )?;
        writeln!(w, "operating point: {}", self.operating_point)
    }
}

pub fn run(ctx: &Ctx, args: &DedupArgs) -> anyhow::Result<ExitStatus> {
    let policy = ctx.policy()?;
    let started = Instant::now();
    let (gallery, names, mut store) = match &args.embeddings {
        Some(path) => {
            let g = read_embeddings(path, args.dim)?;
            let names: Vec<String> = (0..g.subjects()).map(|i| i.to_string()).collect();
            (g, names, None)
        }
        None => {
            ctx.require_purpose("dedup searches every enrolled subject against every other")?;
            let store = ctx.open_store()?;
            let fg = FaceGallery::load(&store, FACE_DIM)?;
            let names: Vec<String> = fg.names.iter().map(|s| s.as_str().to_owned()).collect();
            (fg.gallery, names, Some(store))
        }
    };
    let index_build_s = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let links = search(&gallery, &policy.point, args.threshold);
    let search_s = started.elapsed().as_secs_f64();
    let found = assemble(&links, &names, gallery.subjects());

    let summary = Summary {
        subjects: gallery.subjects(),
        templates: gallery.len(),
        pairs: found.pairs.len(),
        clusters: found.clusters.len(),
        subjects_in_clusters: found.clusters.iter().map(|c| c.subjects.len()).sum(),
        index_build_s,
        search_s,
    };
    let threshold = match args.threshold {
        DedupThreshold::NeedsReview => Decision::NeedsReview,
        DedupThreshold::Accept => Decision::Accept,
    };
    if let Some(store) = &mut store {
        store.record_audit(
            &AuditEvent::Deduplicated {
                threshold,
                pairs: summary.pairs,
                clusters: summary.clusters,
                subjects: summary.subjects,
            },
            None,
            ctx.purpose(),
        )?;
    }
    let any = !found.pairs.is_empty();
    let found = match &args.out {
        Some(path) => {
            write_pairs(path, args.format, &found)?;
            None
        }
        None => Some(found),
    };
    ctx.out.emit(&DedupReport {
        threshold,
        found,
        out: args.out.clone(),
        summary,
        operating_point: policy.report,
    })?;
    Ok(if any {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}

/// Reads a raw little-endian f32 file of `dim`-dimensional rows; each row is
/// its own subject.
fn read_embeddings(path: &Path, dim: usize) -> anyhow::Result<Gallery> {
    let bad = |why: String| CliError::input("bad_embeddings", format!("{}: {why}", path.display()));
    if dim == 0 || dim > 65_536 {
        return Err(bad(format!("--dim {dim} is out of range (1 to 65536)")).into());
    }
    let bytes = files::read_regular(path, MAX_EMBEDDINGS_BYTES, "bad_embeddings")?;
    let row_bytes = 4 * dim;
    if bytes.is_empty() || bytes.len() % row_bytes != 0 {
        return Err(bad(format!(
            "{} bytes is not a whole number of {dim}-dimensional f32 rows",
            bytes.len()
        ))
        .into());
    }
    let rows = bytes.len() / row_bytes;
    if u32::try_from(rows).is_err() {
        return Err(bad(format!("{rows} rows is more than this command handles")).into());
    }
    let values: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    drop(bytes);
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(bad(format!("row {} holds a non-finite value", i / dim)).into());
    }
    let items: Vec<(u32, &[f32])> = values
        .chunks_exact(dim)
        .enumerate()
        .map(|(i, v)| (i as u32, v))
        .collect();
    let mut g = Gallery::new(dim);
    g.extend(&items)?;
    Ok(g)
}

/// Every pair of subjects `(a, b)`, `a < b`, whose best decision reaches the
/// threshold, with that decision, sorted.
fn search(
    gallery: &Gallery,
    point: &OperatingPoint,
    threshold: DedupThreshold,
) -> Vec<(u32, u32, Decision)> {
    let floor = match threshold {
        DedupThreshold::NeedsReview => point.reject_below.min(point.accept_at),
        DedupThreshold::Accept => point.accept_at,
    };
    let bar = super::progress(gallery.len(), "dedup");
    let mut best: std::collections::HashMap<(u32, u32), f32> = std::collections::HashMap::new();
    let mut start = 0;
    while start < gallery.len() {
        let end = (start + BLOCK).min(gallery.len());
        let found = gallery.matches_rows(start..end, floor, MIN_DEPTH);
        for (r, list) in (start..end).zip(found) {
            let s = gallery.owner(r);
            for (o, sim) in list {
                let e = best
                    .entry((s.min(o), s.max(o)))
                    .or_insert(f32::NEG_INFINITY);
                *e = e.max(sim);
            }
        }
        bar.inc((end - start) as u64);
        start = end;
    }
    bar.finish_and_clear();
    let mut links: Vec<(u32, u32, Decision)> = best
        .into_iter()
        .map(|((a, b), s)| (a, b, point.decide(s)))
        .filter(|&(_, _, d)| match threshold {
            DedupThreshold::NeedsReview => d != Decision::Reject,
            DedupThreshold::Accept => d == Decision::Accept,
        })
        .collect();
    links.sort_unstable_by_key(|&(a, b, _)| (a, b));
    links
}

fn find(parent: &mut [u32], mut x: u32) -> u32 {
    while parent[x as usize] != x {
        let p = parent[x as usize];
        parent[x as usize] = parent[p as usize];
        x = p;
    }
    x
}

/// Names the pairs and groups them into clusters (connected components),
/// numbered from 1 in the order of their first subject.
fn assemble(links: &[(u32, u32, Decision)], names: &[String], subjects: usize) -> Found {
    let mut parent: Vec<u32> = (0..subjects as u32).collect();
    for &(a, b, _) in links {
        let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
        if ra != rb {
            parent[ra.max(rb) as usize] = ra.min(rb);
        }
    }
    let mut members: std::collections::BTreeMap<u32, Vec<u32>> = Default::default();
    for &(a, b, _) in links {
        for x in [a, b] {
            let root = find(&mut parent, x);
            members.entry(root).or_default().push(x);
        }
    }
    let mut number = std::collections::HashMap::new();
    let mut clusters = Vec::new();
    for (root, mut m) in members {
        m.sort_unstable();
        m.dedup();
        number.insert(root, clusters.len() + 1);
        clusters.push(Cluster {
            cluster: clusters.len() + 1,
            subjects: m.into_iter().map(|x| names[x as usize].clone()).collect(),
        });
    }
    let pairs = links
        .iter()
        .map(|&(a, b, decision)| Pair {
            subject_a: names[a as usize].clone(),
            subject_b: names[b as usize].clone(),
            decision,
            cluster: number[&find(&mut parent, a)],
        })
        .collect();
    Found { pairs, clusters }
}

fn write_pairs(path: &Path, format: PairFormat, found: &Found) -> anyhow::Result<()> {
    let file = std::fs::File::create(path).with_context(|| path.display().to_string())?;
    let mut w = BufWriter::new(file);
    match format {
        PairFormat::Csv => {
            // Subject ids never hold commas or quotes, so no quoting is needed.
            writeln!(w, "subject_a,subject_b,decision,cluster")?;
            for p in &found.pairs {
                writeln!(
                    w,
                    "{},{},{},{}",
                    p.subject_a, p.subject_b, p.decision, p.cluster
                )?;
            }
        }
        PairFormat::Json => {
            serde_json::to_writer(&mut w, found)?;
            writeln!(w)?;
        }
    }
    w.flush().with_context(|| path.display().to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clusters_are_connected_components() {
        let names: Vec<String> = (0..6).map(|i| format!("s{i}")).collect();
        let links = vec![
            (0, 3, Decision::Accept),
            (1, 4, Decision::NeedsReview),
            (3, 5, Decision::Accept),
        ];
        let f = assemble(&links, &names, 6);
        assert_eq!(f.clusters.len(), 2);
        assert_eq!(f.clusters[0].subjects, ["s0", "s3", "s5"]);
        assert_eq!(f.clusters[1].subjects, ["s1", "s4"]);
        let numbers: Vec<usize> = f.pairs.iter().map(|p| p.cluster).collect();
        assert_eq!(numbers, [1, 2, 1]);
    }

    #[test]
    fn search_equals_all_pairs_scan() {
        // Unit vectors in 2-D around a circle: neighbours within 0.3 rad are
        // closer than 1 - 0.4 in L2 at the default operating point.
        let point = crate::policy::DEFAULT_OPERATING_POINT;
        let angles = [0.0f32, 0.1, 0.45, 1.0, 1.2, 2.0, 3.0, 3.05, 4.0];
        let rows: Vec<[f32; 2]> = angles.iter().map(|a| [a.cos(), a.sin()]).collect();
        let items: Vec<(u32, &[f32])> = rows
            .iter()
            .enumerate()
            .map(|(i, v)| (i as u32, v.as_slice()))
            .collect();
        let mut g = Gallery::new(2);
        g.extend(&items).expect("extend");
        for t in [DedupThreshold::NeedsReview, DedupThreshold::Accept] {
            let got = search(&g, &point, t);
            let mut want = Vec::new();
            for a in 0..rows.len() {
                for b in a + 1..rows.len() {
                    let d = point.decide(ipseity_face::similarity(&rows[a], &rows[b]));
                    let keep = match t {
                        DedupThreshold::NeedsReview => d != Decision::Reject,
                        DedupThreshold::Accept => d == Decision::Accept,
                    };
                    if keep {
                        want.push((a as u32, b as u32, d));
                    }
                }
            }
            assert!(!want.is_empty());
            assert_eq!(got, want);
        }
    }
}
