//! A hand-written, self-contained SVG DET plot, so reports need no plotting library.

use crate::DetPoint;
use std::fmt::Write as _;

/// Lowest decade drawn on either axis: rates below `10^MIN_DECADE` (and zero) are
/// drawn on the axis minimum.
const MIN_DECADE: i32 = -5;
const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 600.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = WIDTH - 30.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = HEIGHT - 70.0;
const PALETTE: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// Position of a rate on a log axis, as a fraction 0..=1 from the axis minimum.
fn log_frac(rate: f64) -> f64 {
    let min = 10f64.powi(MIN_DECADE);
    let r = if rate.is_finite() {
        rate.clamp(min, 1.0)
    } else {
        min
    };
    (r.log10() - f64::from(MIN_DECADE)) / f64::from(-MIN_DECADE)
}

fn px(fmr: f64) -> f64 {
    LEFT + log_frac(fmr) * (RIGHT - LEFT)
}

fn py(fnmr: f64) -> f64 {
    BOTTOM - log_frac(fnmr) * (BOTTOM - TOP)
}

/// Escapes text for use in XML character data and attribute values.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Label for the decade `10^d`.
fn decade_label(d: i32) -> String {
    if d == 0 {
        "1".to_owned()
    } else {
        format!("1e{d}")
    }
}

/// Draws DET curves as a self-contained SVG document.
///
/// Both axes are logarithmic from 1e-5 to 1: FMR along x, FNMR along y, with a
/// gridline and label per decade and fainter lines at 2..9 within each decade.
/// Each curve is one polyline, named in a legend; the dashed diagonal marks
/// FMR = FNMR, where a curve crosses it is its EER. Rates of zero (or below
/// 1e-5) are drawn on the axis minimum. Consecutive points that land on the same
/// tenth of a pixel are merged, so curves of millions of scores stay small.
pub fn det_svg(curves: &[(&str, &[DetPoint])], title: &str) -> String {
    let mut s = String::new();
    // Writing to a String cannot fail; `let _ =` keeps clippy quiet about it.
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, "<title>{}</title>", escape(title));
    let _ = writeln!(
        s,
        r##"<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>"##
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="28" text-anchor="middle" font-size="15">{}</text>"#,
        (LEFT + RIGHT) / 2.0,
        escape(title)
    );

    // Grid: minor lines first so the decade lines draw over them.
    s.push_str("<g stroke=\"#e6e6e6\" stroke-width=\"0.5\">\n");
    for d in MIN_DECADE..0 {
        for m in 2..10 {
            let r = f64::from(m) * 10f64.powi(d);
            let (x, y) = (px(r), py(r));
            let _ = writeln!(
                s,
                r#"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{BOTTOM}"/><line x1="{LEFT}" y1="{y:.1}" x2="{RIGHT}" y2="{y:.1}"/>"#
            );
        }
    }
    s.push_str("</g>\n<g stroke=\"#b0b0b0\" stroke-width=\"1\">\n");
    for d in MIN_DECADE..=0 {
        let r = 10f64.powi(d);
        let (x, y) = (px(r), py(r));
        let _ = writeln!(
            s,
            r#"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{BOTTOM}"/><line x1="{LEFT}" y1="{y:.1}" x2="{RIGHT}" y2="{y:.1}"/>"#
        );
    }
    s.push_str("</g>\n<g fill=\"#333333\">\n");
    for d in MIN_DECADE..=0 {
        let r = 10f64.powi(d);
        let label = decade_label(d);
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{label}</text><text x="{:.1}" y="{:.1}" text-anchor="end">{label}</text>"#,
            px(r),
            BOTTOM + 18.0,
            LEFT - 8.0,
            py(r) + 4.0
        );
    }
    s.push_str("</g>\n");
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">False match rate (FMR)</text>"#,
        (LEFT + RIGHT) / 2.0,
        BOTTOM + 45.0
    );
    let _ = writeln!(
        s,
        r#"<text x="22" y="{0:.1}" text-anchor="middle" transform="rotate(-90 22 {0:.1})">False non-match rate (FNMR)</text>"#,
        (TOP + BOTTOM) / 2.0
    );
    let _ = writeln!(
        s,
        r##"<rect x="{LEFT}" y="{TOP}" width="{:.1}" height="{:.1}" fill="none" stroke="#333333"/>"##,
        RIGHT - LEFT,
        BOTTOM - TOP
    );
    // EER diagonal.
    let _ = writeln!(
        s,
        r##"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#777777" stroke-dasharray="5,4"/>"##,
        px(0.0),
        py(0.0),
        px(1.0),
        py(1.0)
    );

    for (k, (_, points)) in curves.iter().enumerate() {
        let colour = PALETTE[k % PALETTE.len()];
        let _ = write!(
            s,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="1.8" points=""#
        );
        let mut last: Option<(i64, i64)> = None;
        for p in points.iter() {
            let (x, y) = (px(p.fmr), py(p.fnmr));
            // Tenths of a pixel; the values are bounded by the canvas size.
            let key = ((x * 10.0).round() as i64, (y * 10.0).round() as i64);
            if last == Some(key) {
                continue;
            }
            if last.is_some() {
                s.push(' ');
            }
            last = Some(key);
            let _ = write!(s, "{x:.1},{y:.1}");
        }
        s.push_str("\"/>\n");
    }

    if !curves.is_empty() {
        let row = 18.0;
        let legend_w = curves
            .iter()
            .map(|(name, _)| name.chars().count())
            .max()
            .unwrap_or(0) as f64
            * 7.0
            + 40.0;
        let (lx, ly) = (RIGHT - legend_w - 10.0, TOP + 10.0);
        let _ = writeln!(
            s,
            r##"<rect x="{lx:.1}" y="{ly:.1}" width="{legend_w:.1}" height="{:.1}" fill="#ffffff" fill-opacity="0.9" stroke="#b0b0b0"/>"##,
            row * curves.len() as f64 + 8.0
        );
        for (k, (name, _)) in curves.iter().enumerate() {
            let colour = PALETTE[k % PALETTE.len()];
            let y = ly + 4.0 + row * (k as f64 + 0.5);
            let _ = writeln!(
                s,
                r#"<line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{colour}" stroke-width="2.5"/><text x="{:.1}" y="{:.1}">{}</text>"#,
                lx + 8.0,
                lx + 28.0,
                lx + 34.0,
                y + 4.0,
                escape(name)
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::det_curve;

    #[test]
    fn svg_is_well_formed_enough() {
        let a = det_curve(&[0.8, 0.9, 0.7], &[0.1, 0.75, 0.3]).expect("valid");
        let b = det_curve(&[0.5, 0.6], &[0.55, 0.2]).expect("valid");
        let svg = det_svg(&[("system <A>", &a), ("B & co", &b)], "DET \"test\"");
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("system &lt;A&gt;"));
        assert!(svg.contains("B &amp; co"));
        assert!(svg.contains("stroke-dasharray"));
        for label in ["1e-5", "1e-4", "1e-3", "1e-2", "1e-1", ">1<"] {
            assert!(svg.contains(label), "missing axis label {label}");
        }
        // Every element opened is closed: count tags roughly.
        let opens = svg.matches('<').count();
        let closes = svg.matches('>').count();
        assert_eq!(opens, closes);
        assert_eq!(svg.matches("<g ").count(), svg.matches("</g>").count());
        // No raw NaN or infinity leaked into coordinates.
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }

    #[test]
    fn zero_rates_clamp_to_axis_minimum() {
        assert_eq!(px(0.0), LEFT);
        assert_eq!(py(0.0), BOTTOM);
        assert_eq!(px(1.0), RIGHT);
        assert_eq!(py(1.0), TOP);
        assert_eq!(px(1e-9), LEFT);
    }

    #[test]
    fn empty_plot_has_axes_only() {
        let svg = det_svg(&[], "empty");
        assert!(svg.starts_with("<svg") && !svg.contains("<polyline"));
    }
}
