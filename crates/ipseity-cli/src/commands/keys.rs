//! `ipseity keys create|list|revoke`: relying parties' API keys for the service. A key is
//! printed once, at creation; the store keeps only a hash of its secret.
//! `ipseity keys rotate-master`: the store's master key (see `ipseity_store::envelope`).

use std::io::{self, Write};

use ipseity_core::{ApiKey, Scope};
use serde::Serialize;

use crate::args::{KeyCreateArgs, KeyRevokeArgs};
use crate::context::Ctx;
use crate::error::{CliError, ExitStatus};
use crate::output::Render;

#[derive(Serialize)]
struct Created {
    key: String,
    info: ApiKey,
}

impl Render for Created {
    fn render_text(&self, w: &mut dyn Write) -> io::Result<()> {
        writeln!(w, "{}", self.key)?;
        writeln!(
            w,
            "key {} created (scopes {}; purposes {}); it is shown only now: store it safely",
            self.info.name,
            scopes(&self.info.scopes),
            self.info.purposes.join(", ")
        )
    }
}

fn scopes(s: &[Scope]) -> String {
    s.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")
}

pub fn create(ctx: &Ctx, args: &KeyCreateArgs) -> anyhow::Result<ExitStatus> {
    let parsed = args
        .scopes
        .iter()
        .map(|s| {
            Scope::parse(s.trim()).ok_or_else(|| {
                CliError::input(
                    "usage",
                    format!("unknown scope {s:?}: use enrol, verify, identify or admin"),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let needs_purpose = parsed.iter().any(|s| *s != Scope::Admin);
    if needs_purpose && args.purposes.is_empty() {
        return Err(CliError::input(
            "usage",
            "--purposes is required: every enrolment, verification and search states one",
        )
        .into());
    }
    let mut store = ctx.open_backend()?;
    let (info, key) = store.create_key(&args.name, &parsed, &args.purposes)?;
    ctx.out.emit(&Created { key, info })?;
    Ok(ExitStatus::Success)
}

#[derive(Serialize)]
struct Listing {
    keys: Vec<ApiKey>,
}

impl Render for Listing {
    fn render_text(&self, w: &mut dyn Write) -> io::Result<()> {
        if self.keys.is_empty() {
            writeln!(w, "no keys")?;
        }
        for k in &self.keys {
            writeln!(
                w,
                "{}  id {}  scopes {}  purposes {}  created {}{}",
                k.name,
                k.id,
                scopes(&k.scopes),
                k.purposes.join(","),
                k.created_at,
                k.revoked_at
                    .as_ref()
                    .map(|r| format!("  REVOKED {r}"))
                    .unwrap_or_default()
            )?;
        }
        Ok(())
    }
}

pub fn list(ctx: &Ctx) -> anyhow::Result<ExitStatus> {
    let keys = if ctx.database.is_some() {
        ctx.open_backend()?.list_keys()?
    } else {
        match ctx.open_store_existing()? {
            Some(store) => store.list_keys()?,
            None => Vec::new(),
        }
    };
    ctx.out.emit(&Listing { keys })?;
    Ok(ExitStatus::Success)
}

#[derive(Serialize)]
struct Revoked {
    revoked: String,
}

impl Render for Revoked {
    fn render_text(&self, w: &mut dyn Write) -> io::Result<()> {
        writeln!(w, "key {} revoked", self.revoked)
    }
}

pub fn revoke(ctx: &Ctx, args: &KeyRevokeArgs) -> anyhow::Result<ExitStatus> {
    let mut store = ctx.open_backend()?;
    store.revoke_key(&args.name)?;
    ctx.out.emit(&Revoked {
        revoked: args.name.clone(),
    })?;
    Ok(ExitStatus::Success)
}

#[derive(Serialize)]
struct Rotated {
    rewrapped_templates: usize,
}

impl Render for Rotated {
    fn render_text(&self, w: &mut dyn Write) -> io::Result<()> {
        writeln!(
            w,
            "master key rotated: {} data keys re-wrapped; the old key no longer opens the store",
            self.rewrapped_templates
        )
    }
}

pub fn rotate_master(ctx: &Ctx) -> anyhow::Result<ExitStatus> {
    let mut store = ctx.open_backend()?;
    let rewrapped_templates = store.rotate_master()?;
    ctx.out.emit(&Rotated {
        rewrapped_templates,
    })?;
    Ok(ExitStatus::Success)
}
