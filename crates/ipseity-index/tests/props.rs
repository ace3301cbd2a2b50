//! Property tests: every storage kind returns exactly the f32 brute-force
//! answer, and concurrent mutation never leaks a removed subject, with the
//! re-rank rows in memory and in the sealed spill file alike.
#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

use ipseity_index::exact::{normalize, Params, RerankRows};
use ipseity_index::kernels::dot_f32;
use ipseity_index::{ExactIndex, Hit, Index, Storage};
use proptest::prelude::*;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Brute force in f32 over the normalised vectors, best template per subject.
fn brute(gallery: &[(u32, u64, Vec<f32>)], q: &[f32], k: usize, t: f32) -> Vec<Hit<u32>> {
    let y = normalize(q).unwrap();
    let mut best: BTreeMap<u32, (f32, u64)> = BTreeMap::new();
    for (s, tid, v) in gallery {
        let sim = dot_f32(&normalize(v).unwrap(), &y);
        if sim < t {
            continue;
        }
        let e = best.entry(*s).or_insert((sim, *tid));
        if sim > e.0 || (sim == e.0 && *tid < e.1) {
            *e = (sim, *tid);
        }
    }
    let mut hits: Vec<Hit<u32>> = best
        .into_iter()
        .map(|(subject, (similarity, template_id))| Hit {
            subject,
            template_id,
            similarity,
        })
        .collect();
    hits.sort_by(|a, b| {
        b.similarity
            .total_cmp(&a.similarity)
            .then(a.subject.cmp(&b.subject))
            .then(a.template_id.cmp(&b.template_id))
    });
    hits.truncate(k);
    hits
}

/// Both places the re-rank rows can live.
fn rerank_kinds() -> [RerankRows; 2] {
    [RerankRows::InMemory, RerankRows::SealedFile { dir: None }]
}

/// dim, gallery rows (subject, components), queries, k, threshold, shallow re-rank.
type Case = (usize, Vec<(u32, Vec<i8>)>, Vec<Vec<i8>>, usize, f32, bool);

fn case() -> impl Strategy<Value = Case> {
    (1usize..24).prop_flat_map(|dim| {
        (
            Just(dim),
            // Coarse integer components make exact ties and duplicates common.
            prop::collection::vec((0u32..40, prop::collection::vec(-3i8..=3, dim)), 1..160),
            // Up to 19 queries: batches of 8 take the fused block kernel, the rest
            // the per-query path.
            prop::collection::vec(prop::collection::vec(-3i8..=3, dim), 1..20),
            1usize..8,
            prop_oneof![Just(-1.0f32), -0.5f32..0.9],
            any::<bool>(),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn quantised_search_equals_f32_brute_force((dim, rows, queries, k, t, shallow) in case()) {
        let gallery: Vec<(u32, u64, Vec<f32>)> = rows
            .iter()
            .enumerate()
            .filter(|(_, (_, v))| v.iter().any(|&x| x != 0))
            .map(|(i, (s, v))| (*s, i as u64, v.iter().map(|&x| x as f32 + 0.01 * (i % 3) as f32).collect()))
            .collect();
        // A shallow re-rank depth forces the adaptive second pass.
        for (storage, rerank) in [Storage::F32, Storage::F16, Storage::Int8]
            .into_iter()
            .flat_map(|s| rerank_kinds().map(|r| (s, r)))
        {
            let params = Params {
                shards: 3,
                rerank_min: if shallow { 1 } else { 64 },
                rerank_factor: if shallow { 1 } else { 4 },
                chunk_rows: 32,
                calibrate_from: 16,
                rerank: rerank.clone(),
            };
            let idx = ExactIndex::with_params(dim, storage, params).unwrap();
            for (s, tid, v) in &gallery {
                idx.add(*s, *tid, v).unwrap();
            }
            let qs: Vec<Vec<f32>> = queries
                .iter()
                .filter(|q| q.iter().any(|&x| x != 0))
                .map(|q| q.iter().map(|&x| x as f32).collect())
                .collect();
            let flat: Vec<f32> = qs.concat();
            let batch = idx.search_batch(&flat, k, t).unwrap();
            for (q, got) in qs.iter().zip(&batch) {
                let want = brute(&gallery, q, k, t);
                prop_assert_eq!(got, &want, "{:?} {:?} batch", storage, rerank);
                prop_assert_eq!(&idx.search(q, k, t).unwrap(), &want, "{:?} {:?} single", storage, rerank);
            }
        }
    }
}

#[test]
fn clustered_int8_equals_brute_force() {
    use ipseity_index::synth::{gallery, probes, SynthParams};
    let p = SynthParams {
        duplicates: 0.05,
        ..SynthParams::new(3000, 64)
    };
    let g = gallery(&p);
    let rows: Vec<(u32, u64, Vec<f32>)> = (0..g.len())
        .map(|i| ((g.identity[i] % 1000) as u32, i as u64, g.row(i).to_vec()))
        .collect();
    let items: Vec<(u32, u64, &[f32])> = rows
        .iter()
        .map(|(s, t, v)| (*s, *t, v.as_slice()))
        .collect();
    let (qs, _) = probes(&g, &p, 40, 9);
    for rerank in rerank_kinds() {
        let params = Params {
            rerank: rerank.clone(),
            ..Params::default()
        };
        let idx = ExactIndex::with_params(64, Storage::Int8, params).unwrap();
        idx.extend(&items).unwrap();
        let got = idx.search_batch(&qs, 10, -1.0).unwrap();
        for (q, hits) in qs.chunks_exact(64).zip(&got) {
            assert_eq!(hits, &brute(&rows, q, 10, -1.0), "{rerank:?}");
        }
    }
}

#[test]
fn concurrent_mutation_never_leaks_removed_subjects() {
    for rerank in rerank_kinds() {
        concurrent_mutation(rerank);
    }
}

fn concurrent_mutation(rerank: RerankRows) {
    const DIM: usize = 16;
    let params = Params {
        rerank,
        ..Params::default()
    };
    let idx = Arc::new(ExactIndex::<u64>::with_params(DIM, Storage::Int8, params).unwrap());
    let v = |s: u64, j: u64| -> Vec<f32> {
        (0..DIM as u64)
            .map(|d| ((s * 31 + j * 7 + d * 13) % 17) as f32 - 8.0 + 0.5)
            .collect()
    };
    for s in 0..400u64 {
        for j in 0..3 {
            idx.add(s, j, &v(s, j)).unwrap();
        }
    }
    // Subjects whose removal has returned, in order; the counter publishes how
    // many of them a search started later must not see.
    let removed = Arc::new(Mutex::new(Vec::<u64>::new()));
    let done_count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // Searchers that have finished a search: the mutator waits for both, so
    // that searches and mutations really overlap on any scheduler.
    let ready = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for t in 0..2u64 {
        let (idx, removed, done_count, stop, ready) = (
            idx.clone(),
            removed.clone(),
            done_count.clone(),
            stop.clone(),
            ready.clone(),
        );
        handles.push(std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let n = done_count.load(Ordering::SeqCst) as usize;
                let gone: HashSet<u64> = removed.lock().unwrap()[..n].iter().copied().collect();
                let q = v(i % 400, t);
                let hits = idx.search(&q, 20, -1.0).unwrap();
                for h in &hits {
                    assert!(
                        !gone.contains(&h.subject),
                        "removed subject {} returned",
                        h.subject
                    );
                }
                if i == 0 {
                    ready.fetch_add(1, Ordering::SeqCst);
                }
                i += 1;
            }
            i
        }));
    }
    {
        let idx = idx.clone();
        handles.push(std::thread::spawn(move || {
            while ready.load(Ordering::SeqCst) < 2 {
                std::thread::yield_now();
            }
            for s in 0..200u64 {
                // Add new subjects and replace others while removing.
                idx.add(1000 + s, 0, &v(1000 + s, 0)).unwrap();
                idx.replace_subject(200 + s, &[(9, &v(s, 9)[..])]).unwrap();
                assert_eq!(idx.remove_subject(&s), 3);
                let mut r = removed.lock().unwrap();
                r.push(s);
                done_count.store(r.len() as u64, Ordering::SeqCst);
            }
            stop.store(true, Ordering::SeqCst);
            0
        }));
    }
    let searches: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(searches > 0);
    assert_eq!(idx.len(), 400 * 3 - 200 * 3 - 200 * 2 + 200);
}
