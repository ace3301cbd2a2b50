//! Tests of the exact index: every storage finds itself, edits keep the
//! subject row lists and the sealed spill in step, the quantised answer
//! equals the f32 one, and the first-pass depth only changes speed.

use super::*;
use std::collections::{HashMap, HashSet};

fn vecs(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            (0..dim)
                .map(|_| {
                    s = s
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
                })
                .collect()
        })
        .collect()
}

#[test]
fn depth_follows_the_dimension_and_only_changes_speed() {
    assert_eq!(Params::depth_for(128), 64);
    assert_eq!(Params::depth_for(256), 128);
    assert_eq!(Params::depth_for(512), 512);
    assert_eq!(Params::depth_for(usize::MAX), 4096);
    assert_eq!(Params::depth_for_batch(128, 1), SMALL_BATCH_DEPTH);
    assert_eq!(Params::depth_for_batch(128, 7), SMALL_BATCH_DEPTH);
    assert_eq!(Params::depth_for_batch(128, 8), 64);
    assert_eq!(Params::depth_for_batch(512, 1), 512);
    let build = |rerank_min, rerank_factor| {
        let p = Params {
            shards: 2,
            rerank_min,
            rerank_factor,
            ..Params::default()
        };
        let idx = ExactIndex::with_params(64, Storage::Int8, p).unwrap();
        for (i, v) in vecs(3000, 64, 11).iter().enumerate() {
            idx.add(i as u64 / 2, i as u64, v).unwrap();
        }
        idx
    };
    let (auto, shallow) = (build(0, 4), build(1, 1));
    let qs: Vec<f32> = vecs(30, 64, 12).concat();
    assert_eq!(
        auto.search_batch(&qs, 5, -1.0).unwrap(),
        shallow.search_batch(&qs, 5, -1.0).unwrap()
    );
    // The shallow first pass cannot settle the top 5 from 5 candidates.
    assert!(shallow.second_passes() > auto.second_passes());
}

#[test]
fn finds_itself_in_every_storage() {
    for storage in [Storage::F32, Storage::F16, Storage::Int8] {
        let idx = ExactIndex::new(37, storage);
        let vs = vecs(500, 37, 3);
        for (i, v) in vs.iter().enumerate() {
            idx.add(i as u64 / 3, i as u64, v).unwrap();
        }
        assert_eq!(idx.len(), 500);
        assert_eq!(idx.subjects(), 167);
        for (i, v) in vs.iter().enumerate().step_by(37) {
            let hits = idx.search(v, 3, -1.0).unwrap();
            assert_eq!(hits.len(), 3);
            assert_eq!(hits[0].subject, i as u64 / 3, "{storage:?}");
            assert_eq!(hits[0].template_id, i as u64);
            assert!((hits[0].similarity - 1.0).abs() < 1e-5);
        }
    }
}

#[test]
fn remove_replace_threshold_and_errors() {
    let idx = ExactIndex::new(8, Storage::Int8);
    let vs = vecs(40, 8, 5);
    for (i, v) in vs.iter().enumerate() {
        idx.add(format!("s{}", i % 10), i as u64, v).unwrap();
    }
    assert_eq!(
        idx.add("s0".to_string(), 0, &vs[0]),
        Err(IndexError::DuplicateTemplate { template_id: 0 })
    );
    assert!(matches!(
        idx.add("x".into(), 1, &[0.0; 8]),
        Err(IndexError::InvalidVector(_))
    ));
    assert!(matches!(
        idx.search(&[1.0; 7], 1, 0.0),
        Err(IndexError::DimensionMismatch { .. })
    ));
    assert_eq!(idx.remove_subject(&"s3".to_string()), 4);
    assert_eq!(idx.remove_subject(&"s3".to_string()), 0);
    assert_eq!(idx.len(), 36);
    let hits = idx.search(&vs[3], 10, -1.0).unwrap();
    assert_eq!(hits.len(), 9);
    assert!(hits.iter().all(|h| h.subject != "s3"));
    idx.replace_subject("s4".into(), &[(99, &vs[3])]).unwrap();
    let hits = idx.search(&vs[3], 1, 0.999).unwrap();
    assert_eq!(
        hits,
        vec![Hit {
            subject: "s4".to_string(),
            template_id: 99,
            similarity: hits[0].similarity
        }]
    );
    assert_eq!(idx.len(), 33);
    assert!(idx.search(&vs[3], 0, -1.0).unwrap().is_empty());
}

fn sealed(shards: usize) -> Params {
    Params {
        shards,
        calibrate_from: 16,
        rerank: RerankRows::SealedFile { dir: None },
        ..Params::default()
    }
}

#[test]
fn sealed_rerank_rows_leave_ram_and_answer_the_same() {
    let dim = 24;
    let vs = vecs(900, dim, 11);
    for storage in [Storage::F16, Storage::Int8] {
        let mem: ExactIndex<u64> = ExactIndex::with_params(
            dim,
            storage,
            Params {
                shards: 3,
                calibrate_from: 16,
                ..Params::default()
            },
        )
        .unwrap();
        let spill: ExactIndex<u64> = ExactIndex::with_params(dim, storage, sealed(3)).unwrap();
        let items: Vec<(u64, u64, &[f32])> = vs[..600]
            .iter()
            .enumerate()
            .map(|(i, v)| (i as u64 / 4, i as u64, v.as_slice()))
            .collect();
        for idx in [&mem, &spill] {
            idx.extend(&items).unwrap();
            for (i, v) in vs[600..].iter().enumerate() {
                idx.add(1000 + i as u64 / 2, i as u64, v).unwrap();
            }
            for s in (0..150).step_by(7) {
                assert_eq!(idx.remove_subject(&s), 4);
            }
            idx.replace_subject(3, &[(5, &vs[1][..]), (6, &vs[2][..])])
                .unwrap();
        }
        let qs: Vec<f32> = vecs(30, dim, 99).concat();
        let want = mem.search_batch(&qs, 7, -1.0).unwrap();
        assert_eq!(
            spill.search_batch(&qs, 7, -1.0).unwrap(),
            want,
            "{storage:?}"
        );
        for (q, w) in qs.chunks_exact(dim).zip(&want) {
            assert_eq!(&spill.search(q, 7, -1.0).unwrap(), w);
        }
        assert_eq!(spill.len(), mem.len());
        assert_eq!(spill.memory().rerank, 0);
        // In RAM the copy is counted by capacity.
        assert!(mem.memory().rerank >= mem.len() * dim * 4);
        assert_eq!(spill.spill_bytes(), (spill.len() * (24 + 4 * dim)) as u64);
        assert_eq!(mem.spill_bytes(), 0);
    }
    // The f32 storage scans its f32 copy: nothing to spill.
    let f32s: ExactIndex<u64> = ExactIndex::with_params(dim, Storage::F32, sealed(2)).unwrap();
    f32s.add(1, 1, &vs[0]).unwrap();
    assert_eq!(f32s.spill_bytes(), 0);
}

#[test]
fn a_corrupted_spill_row_fails_the_search() {
    let idx: ExactIndex<u64> = ExactIndex::with_params(8, Storage::Int8, sealed(1)).unwrap();
    let vs = vecs(40, 8, 4);
    for (i, v) in vs.iter().enumerate() {
        idx.add(i as u64, i as u64, v).unwrap();
    }
    assert_eq!(idx.search(&vs[17], 3, -1.0).unwrap()[0].subject, 17);
    let rec = (24 + 4 * 8) as u64;
    idx.read(0)
        .sealed
        .as_ref()
        .unwrap()
        .corrupt(17 * rec + 30)
        .unwrap();
    // Row 17 is the best candidate of its own vector, so it is read.
    assert_eq!(
        idx.search(&vs[17], 3, -1.0),
        Err(IndexError::SpillCorrupt { row: 17 })
    );
    assert!(idx.search_batch(&vs[10..20].concat(), 3, -1.0).is_err());
    // A probe far from row 17 need not read it; if it does, it fails.
    match idx.search(&vs[5], 1, -1.0) {
        Ok(hits) => assert_eq!(hits[0].subject, 5),
        Err(e) => assert_eq!(e, IndexError::SpillCorrupt { row: 17 }),
    }
}

#[test]
fn an_unusable_spill_directory_is_a_typed_error() {
    let p = Params {
        rerank: RerankRows::SealedFile {
            dir: Some(PathBuf::from("/nonexistent/ipseity-spill")),
        },
        ..Params::default()
    };
    assert!(matches!(
        ExactIndex::<u64>::with_params(8, Storage::Int8, p),
        Err(IndexError::SpillIo { op: "create", .. })
    ));
}

#[test]
fn a_failed_extend_leaves_every_shard_as_it_was() {
    let dim = 12;
    let vs = vecs(300, dim, 21);
    for params in [
        Params {
            shards: 3,
            calibrate_from: 16,
            ..Params::default()
        },
        sealed(3),
    ] {
        let idx: ExactIndex<u64> = ExactIndex::with_params(dim, Storage::Int8, params).unwrap();
        let first: Vec<(u64, u64, &[f32])> = (0..100)
            .map(|i| (i as u64 / 2, i as u64, vs[i].as_slice()))
            .collect();
        idx.extend(&first).unwrap();
        let qs = vecs(12, dim, 5).concat();
        let before = idx.search_batch(&qs, 5, -1.0).unwrap();
        // New rows for many subjects in every shard, then a duplicate.
        let mut more: Vec<(u64, u64, &[f32])> = (100..300)
            .map(|i| (i as u64 / 2, i as u64, vs[i].as_slice()))
            .collect();
        more.push((7, 14, vs[0].as_slice()));
        assert_eq!(
            idx.extend(&more),
            Err(IndexError::DuplicateTemplate { template_id: 14 })
        );
        assert_eq!(idx.len(), 100);
        assert_eq!(idx.subjects(), 50);
        assert_eq!(idx.search_batch(&qs, 5, -1.0).unwrap(), before);
        more.pop();
        idx.extend(&more).unwrap();
        assert_eq!(idx.len(), 300);
    }
}

/// Walks every subject's list and checks it against the row tables and
/// against `model` (subject -> template ids).
fn check_lists(idx: &ExactIndex<u64>, model: &HashMap<u64, HashSet<u64>>) {
    let mut seen: HashMap<u64, HashSet<u64>> = HashMap::new();
    for i in 0..idx.shards.len() {
        let s = idx.read(i);
        assert_eq!(s.next.len(), s.n);
        let mut rows_seen = vec![false; s.n];
        for (key, e) in &s.subjects {
            assert_eq!(s.slots[e.slot as usize].as_ref(), Some(key));
            for r in s.rows_from(e.head) {
                let r = r as usize;
                assert!(r < s.n, "row {r} past the shard's {} rows", s.n);
                assert!(!rows_seen[r], "row {r} on two lists");
                rows_seen[r] = true;
                assert_eq!(s.owner[r], e.slot);
                assert!(seen.entry(*key).or_default().insert(s.tid[r]));
            }
        }
        assert!(rows_seen.iter().all(|&x| x), "a row on no list");
    }
    assert_eq!(&seen, model);
}

#[test]
fn subject_row_lists_follow_random_edits() {
    let dim = 8;
    let vs = vecs(64, dim, 3);
    let mut rng = 0x5eed_u64;
    let mut draw = |n: u64| {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (rng >> 33) % n
    };
    for params in [
        Params {
            shards: 3,
            calibrate_from: 8,
            ..Params::default()
        },
        sealed(2),
    ] {
        let idx: ExactIndex<u64> = ExactIndex::with_params(dim, Storage::Int8, params).unwrap();
        let mut model: HashMap<u64, HashSet<u64>> = HashMap::new();
        let mut next_tid = 0u64;
        for _ in 0..400 {
            match draw(5) {
                0 | 1 => {
                    let subject = draw(12);
                    let v = &vs[draw(64) as usize];
                    idx.add(subject, next_tid, v).unwrap();
                    model.entry(subject).or_default().insert(next_tid);
                    next_tid += 1;
                }
                2 => {
                    let subject = draw(12);
                    let had = model.remove(&subject).map_or(0, |t| t.len());
                    assert_eq!(idx.remove_subject(&subject), had);
                }
                3 => {
                    // A bulk insert over old and new subjects, which
                    // fails on its last item half of the time.
                    let mut items: Vec<(u64, u64, &[f32])> = (0..draw(20) + 1)
                        .map(|j| (draw(16), next_tid + j, vs[draw(64) as usize].as_slice()))
                        .collect();
                    let fail = draw(2) == 0 && !model.is_empty();
                    if fail {
                        let (&subject, tids) = model.iter().next().unwrap();
                        let tid = *tids.iter().next().unwrap();
                        items.push((subject, tid, vs[0].as_slice()));
                        assert!(idx.extend(&items).is_err());
                    } else {
                        idx.extend(&items).unwrap();
                        for &(subject, tid, _) in &items {
                            model.entry(subject).or_default().insert(tid);
                        }
                    }
                    next_tid += items.len() as u64;
                }
                _ => {
                    let subject = draw(12);
                    let n = draw(4) as usize;
                    let items: Vec<(u64, &[f32])> = (0..n)
                        .map(|j| (next_tid + j as u64, vs[draw(64) as usize].as_slice()))
                        .collect();
                    idx.replace_subject(subject, &items).unwrap();
                    model.remove(&subject);
                    if n > 0 {
                        model.insert(subject, items.iter().map(|x| x.0).collect());
                    }
                    next_tid += n as u64;
                }
            }
            check_lists(&idx, &model);
        }
        assert!(!model.is_empty());
    }
}

#[test]
fn batches_deepen_their_first_pass_when_second_passes_dominate() {
    // One tight cluster: every score sits inside every other's bound
    // window, so a first pass of 64 cannot settle a top 10.
    let dim = 128;
    let centre = vecs(1, dim, 41).remove(0);
    let noisy = |n, seed| -> Vec<Vec<f32>> {
        vecs(n, dim, seed)
            .into_iter()
            .map(|e| centre.iter().zip(&e).map(|(c, e)| c + 0.02 * e).collect())
            .collect()
    };
    let rows = noisy(4000, 42);
    let build = |rerank_min| {
        let p = Params {
            shards: 2,
            rerank_min,
            ..Params::default()
        };
        let idx: ExactIndex<u64> = ExactIndex::with_params(dim, Storage::Int8, p).unwrap();
        let items: Vec<(u64, u64, &[f32])> = rows
            .iter()
            .enumerate()
            .map(|(i, v)| (i as u64 / 2, i as u64, v.as_slice()))
            .collect();
        idx.extend(&items).unwrap();
        idx
    };
    let (learning, deep) = (build(0), build(4096));
    assert_eq!(learning.batch_depth(), Params::depth_for(dim));
    let qs = noisy(2 * BATCH_STEP, 43).concat();
    let got = learning.search_batch(&qs, 10, -1.0).unwrap();
    assert!(learning.second_passes() > 0);
    assert!(
        learning.batch_depth() > Params::depth_for(dim),
        "depth stayed at {}",
        learning.batch_depth()
    );
    assert_eq!(
        deep.batch_depth(),
        Params::depth_for(dim),
        "fixed depth learns nothing"
    );
    assert_eq!(got, deep.search_batch(&qs, 10, -1.0).unwrap());
}
