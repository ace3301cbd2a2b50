//! `ipseity embed`: a developer and evaluation command that prints each face's
//! box, landmarks, quality and raw 128-D embedding. The embedding is biometric
//! data; this is the one command besides `eval` allowed to print it.

use std::io::{self, Write};

use ipseity_face::{FaceAnalysis, FaceError};
use serde::Serialize;

use crate::args::EmbedArgs;
use crate::context::{load_face_image, Ctx};
use crate::error::ExitStatus;
use crate::output::Render;

#[derive(Serialize)]
struct Face {
    #[serde(flatten)]
    analysis: FaceAnalysis,
    embedding: Vec<f32>,
}

#[derive(Serialize)]
struct Embedding {
    model: &'static str,
    faces: Vec<Face>,
}

impl Render for Embedding {
    fn render_text(&self, w: &mut dyn Write) -> io::Result<()> {
        writeln!(w, "model: {}", self.model)?;
        for (i, f) in self.faces.iter().enumerate() {
            let a = &f.analysis;
            let r = a.rect;
            writeln!(w, "face {}:", i + 1)?;
            writeln!(
                w,
                "  box: left {} top {} right {} bottom {} (detector confidence {:.3})",
                r.left, r.top, r.right, r.bottom, a.detection_confidence
            )?;
            let lm: Vec<String> = a
                .landmarks
                .iter()
                .map(|p| format!("({:.1}, {:.1})", p.x, p.y))
                .collect();
            writeln!(w, "  landmarks: {}", lm.join(" "))?;
            let q = &a.quality;
            writeln!(
                w,
                "  quality: {} (width {} px, detection {:.2}, sharpness {:.2}, exposure {:.2}, in frame {:.2}; weakest: {})",
                q.score, q.face_width_px, q.detection, q.sharpness, q.exposure, q.in_frame, q.weakest
            )?;
            let v: Vec<String> = f.embedding.iter().map(|x| format!("{x:.6}")).collect();
            writeln!(w, "  embedding ({}-D): {}", v.len(), v.join(" "))?;
        }
        Ok(())
    }
}

pub fn run(ctx: &Ctx, args: &EmbedArgs) -> anyhow::Result<ExitStatus> {
    let img = load_face_image(&args.face)?;
    let engine = ctx.engine()?;
    let mut faces = if args.largest {
        vec![engine.single_face(&img, true)?]
    } else {
        engine.analyze(&img)?
    };
    if faces.is_empty() {
        return Err(anyhow::Error::new(FaceError::NoFace).context(args.face.display().to_string()));
    }
    let faces = faces
        .drain(..)
        .map(|mut analysis| Face {
            embedding: std::mem::take(&mut analysis.embedding),
            analysis,
        })
        .collect();
    ctx.out.emit(&Embedding {
        model: ipseity_face::MODEL_ID,
        faces,
    })?;
    Ok(ExitStatus::Success)
}
