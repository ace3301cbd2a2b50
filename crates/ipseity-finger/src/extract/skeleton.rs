//! Thinning of the ridge map to a one-pixel-wide, 8-connected skeleton: Zhang–Suen driven
//! by lookup tables, then one pass that removes the redundant corner pixels Zhang–Suen
//! leaves on diagonal staircases (they would read as false bifurcations).

use super::enhance::RidgeMap;

/// Neighbour order used for every 8-bit neighbourhood code in this module and the
/// minutiae module: bit 0 N, 1 NE, 2 E, 3 SE, 4 S, 5 SW, 6 W, 7 NW.
pub(super) const RING: [(isize, isize); 8] = [
    (0, -1),
    (1, -1),
    (1, 0),
    (1, 1),
    (0, 1),
    (-1, 1),
    (-1, 0),
    (-1, -1),
];

/// Neighbourhood code of the pixel at `i` in a map with a background frame.
#[inline]
pub(super) fn code(px: &[u8], stride: usize, i: usize) -> u8 {
    let s = stride;
    let g = |j: usize| px.get(j).copied().unwrap_or(0) & 1;
    g(i - s)
        | g(i - s + 1) << 1
        | g(i + 1) << 2
        | g(i + s + 1) << 3
        | g(i + s) << 4
        | g(i + s - 1) << 5
        | g(i - 1) << 6
        | g(i - s - 1) << 7
}

/// Crossing number: half the number of value changes around the ring.
pub(super) fn crossing_number(c: u8) -> u32 {
    (c ^ c.rotate_right(1)).count_ones() / 2
}

fn bit(c: u8, k: u32) -> bool {
    c >> k & 1 == 1
}

fn zhang_suen_lut(second: bool) -> [bool; 256] {
    let mut lut = [false; 256];
    for (c, slot) in lut.iter_mut().enumerate() {
        let c = c as u8;
        let b = c.count_ones();
        // 0→1 transitions around the ring.
        let a = (!c & c.rotate_right(1)).count_ones();
        let (n, e, s, w) = (bit(c, 0), bit(c, 2), bit(c, 4), bit(c, 6));
        let cond = if second {
            !(n && w && (e || s))
        } else {
            !(e && s && (n || w))
        };
        *slot = (2..=6).contains(&b) && a == 1 && cond;
    }
    lut
}

/// Pixels whose foreground neighbours form one 8-connected group, with at least two of
/// them and a 4-neighbour in the background: removing one keeps the skeleton's topology
/// and its endpoints.
fn redundant_lut() -> [bool; 256] {
    let mut lut = [false; 256];
    for (c, slot) in lut.iter_mut().enumerate() {
        let c = c as u8;
        if c.count_ones() < 2 {
            continue;
        }
        if bit(c, 0) && bit(c, 2) && bit(c, 4) && bit(c, 6) {
            continue;
        }
        // Union-find over ring positions: consecutive positions are adjacent, and so are
        // 4-neighbours two steps apart (N-E, E-S, ...).
        let mut parent = [0usize, 1, 2, 3, 4, 5, 6, 7];
        fn find(p: &mut [usize; 8], mut i: usize) -> usize {
            while p[i] != i {
                i = p[i];
            }
            i
        }
        for i in 0..8usize {
            if !bit(c, i as u32) {
                continue;
            }
            let mut adj = vec![(i + 1) % 8];
            if i % 2 == 0 {
                adj.push((i + 2) % 8);
            }
            for j in adj {
                if bit(c, j as u32) {
                    let (a, b) = (find(&mut parent, i), find(&mut parent, j));
                    parent[a] = b;
                }
            }
        }
        let mut roots = 0;
        for i in 0..8usize {
            if bit(c, i as u32) && find(&mut parent, i) == i {
                roots += 1;
            }
        }
        *slot = roots == 1;
    }
    lut
}

/// Thins the ridge map in place.
pub(super) fn thin(map: &mut RidgeMap) {
    let s = map.stride;
    let px = &mut map.px;
    let luts = [zhang_suen_lut(false), zhang_suen_lut(true)];
    let mut live: Vec<usize> = (0..px.len()).filter(|&i| px[i] == 1).collect();
    let mut del = Vec::new();
    loop {
        let mut changed = false;
        for lut in &luts {
            del.clear();
            for &i in &live {
                if lut[usize::from(code(px, s, i))] {
                    del.push(i);
                }
            }
            for &i in &del {
                px[i] = 0;
            }
            changed |= !del.is_empty();
            live.retain(|&i| px[i] == 1);
        }
        if !changed {
            break;
        }
    }
    let red = redundant_lut();
    for &i in &live {
        if red[usize::from(code(px, s, i))] {
            px[i] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map_from(rows: &[&str]) -> RidgeMap {
        let h = rows.len();
        let w = rows[0].len();
        let stride = w + 2;
        let mut px = vec![0u8; stride * (h + 2)];
        for (y, r) in rows.iter().enumerate() {
            for (x, ch) in r.chars().enumerate() {
                px[(y + 1) * stride + x + 1] = u8::from(ch == '#');
            }
        }
        RidgeMap {
            stride,
            rows: h + 2,
            px,
        }
    }

    #[test]
    fn crossing_numbers() {
        assert_eq!(crossing_number(0b0000_0001), 1);
        assert_eq!(crossing_number(0b0001_0001), 2);
        assert_eq!(crossing_number(0b0101_0001), 3);
        assert_eq!(crossing_number(0b0000_0011), 1);
    }

    #[test]
    fn thick_bar_thins_to_a_line_with_two_ends() {
        let mut m = map_from(&[
            "..............",
            ".############.",
            ".############.",
            ".############.",
            ".############.",
            "..............",
        ]);
        thin(&mut m);
        let ones: Vec<usize> = (0..m.px.len()).filter(|&i| m.px[i] == 1).collect();
        assert!(ones.len() >= 8, "{}", ones.len());
        let ends = ones
            .iter()
            .filter(|&&i| crossing_number(code(&m.px, m.stride, i)) == 1)
            .count();
        let forks = ones
            .iter()
            .filter(|&&i| crossing_number(code(&m.px, m.stride, i)) >= 3)
            .count();
        assert_eq!((ends, forks), (2, 0));
        // One pixel wide: no 2x2 block survives.
        for &i in &ones {
            let s = m.stride;
            assert!(!(m.px[i + 1] == 1 && m.px[i + s] == 1 && m.px[i + s + 1] == 1));
        }
    }

    #[test]
    fn staircase_corners_are_removed() {
        let mut m = map_from(&["#.....", "##....", ".##...", "..##..", "...##.", "....##"]);
        thin(&mut m);
        let s = m.stride;
        for i in 0..m.px.len() {
            if m.px[i] == 1 {
                let cn = crossing_number(code(&m.px, s, i));
                assert!(cn <= 2, "false junction at {i}");
            }
        }
    }
}
