//! One module per command; each turns its arguments into a `Serialize` report
//! for [`crate::output`] and returns the exit status.

mod audit;
mod bench;
mod dedup;
mod document;
mod embed;
mod enroll;
mod erase;
mod eval;
mod eval_lfw;
mod eval_pad;
mod finger;
pub mod identify;
mod keys;
mod list;
mod models;
mod serve;
mod verify;

use crate::args::{
    BenchCommand, Command, ConsentCommand, DocumentCommand, FingerCommand, KeysCommand,
    ModelsCommand, ReviewCommand,
};
use crate::context::Ctx;
use crate::error::ExitStatus;

/// Runs one command.
pub fn run(ctx: &Ctx, command: &Command) -> anyhow::Result<ExitStatus> {
    let chain_check = matches!(command, Command::Audit(a) if a.command.is_some());
    if ctx.database.is_some()
        && !chain_check
        && !matches!(command, Command::Serve(_) | Command::Keys(_))
    {
        // The other commands work on the embedded store only; on PostgreSQL the service's
        // API is the way in, so that its live galleries stay in step.
        return Err(crate::error::CliError::input(
            "usage",
            "--database (IPSEITY_DATABASE_URL) is for `serve`, `keys` and `audit verify|head`; on PostgreSQL use the service's API",
        )
        .into());
    }
    match command {
        Command::Models(ModelsCommand::Install(args)) => models::install(ctx, args),
        Command::Enroll(a) => enroll::run(ctx, a),
        Command::Verify(a) => verify::run(ctx, a),
        Command::Identify(a) => identify::run(ctx, a),
        Command::Embed(a) => embed::run(ctx, a),
        Command::List => list::run(ctx),
        Command::Erase(a) => erase::run(ctx, a),
        Command::Unlock(a) => erase::unlock(ctx, a),
        Command::Review(ReviewCommand::List) => erase::review_list(ctx),
        Command::Review(ReviewCommand::Resolve(a)) => erase::review_resolve(ctx, a),
        Command::Consent(ConsentCommand::Give(a)) => erase::consent(ctx, a, true),
        Command::Consent(ConsentCommand::Withdraw(a)) => erase::consent(ctx, a, false),
        Command::Audit(a) => audit::run(ctx, a),
        Command::Eval(a) => eval::run(ctx, a),
        Command::Dedup(a) => dedup::run(ctx, a),
        Command::Bench(BenchCommand::Search(a)) => bench::search(ctx, a),
        Command::Finger(FingerCommand::Synth(a)) => finger::synth::run(ctx, a),
        Command::Finger(FingerCommand::Extract(a)) => finger::extract::run(ctx, a),
        Command::Finger(FingerCommand::Enroll(a)) => finger::enroll::run(ctx, a),
        Command::Finger(FingerCommand::Verify(a)) => finger::verify::run(ctx, a),
        Command::Finger(FingerCommand::Identify(a)) => finger::identify::run(ctx, a),
        Command::Finger(FingerCommand::Eval(a)) => finger::eval::run(ctx, a),
        Command::Document(DocumentCommand::Mrz(a)) => document::mrz(ctx, a),
        Command::Document(DocumentCommand::Read(a)) => document::read(ctx, a),
        Command::Document(DocumentCommand::Verify(a)) => document::verify(ctx, a),
        Command::Document(DocumentCommand::Sample(a)) => document::sample(ctx, a),
        Command::Keys(KeysCommand::Create(a)) => keys::create(ctx, a),
        Command::Keys(KeysCommand::List) => keys::list(ctx),
        Command::Keys(KeysCommand::Revoke(a)) => keys::revoke(ctx, a),
        Command::Keys(KeysCommand::RotateMaster) => keys::rotate_master(ctx),
        Command::Serve(a) => serve::run(ctx, a),
    }
}

/// `--top 0` asks for nothing: a usage error, refused before any work.
fn check_top(top: usize) -> anyhow::Result<()> {
    if top == 0 {
        return Err(crate::error::CliError::input("usage", "--top must be at least 1").into());
    }
    Ok(())
}

/// Parses a subject id given on the command line.
fn subject_id(s: &str) -> anyhow::Result<ipseity_core::SubjectId> {
    Ok(ipseity_core::SubjectId::new(s)?)
}

/// The candidates whose consent covers the search's purpose, in their order.
fn consenting(
    store: &ipseity_store::Store,
    found: Vec<ipseity_engine::identify::Candidate>,
    purpose: Option<&str>,
) -> anyhow::Result<Vec<ipseity_engine::identify::Candidate>> {
    let mut kept = Vec::with_capacity(found.len());
    for c in found {
        if store.consented(&c.subject, purpose)? {
            kept.push(c);
        }
    }
    Ok(kept)
}

/// Refuses a verification (no consent for the purpose; audited) or while the subject's
/// failed attempts lock it (audited); else
/// counts it as begun, to be finished with [`ipseity_store::Store::finish_attempt`].
fn gate_attempt(
    ctx: &Ctx,
    store: &mut ipseity_store::Store,
    subject: &ipseity_core::SubjectId,
) -> anyhow::Result<()> {
    use ipseity_store::attempts::{AttemptGate, AttemptPolicy};
    if store.pending_of(subject)?.is_some() {
        return Err(crate::error::CliError::input(
            "pending_review",
            format!(
                "the enrolment of {subject} is held for review; resolve it first \
                 (`ipseity review list`)"
            ),
        )
        .into());
    }
    if !store.consented(subject, ctx.purpose())? {
        store.templates(subject)?;
        store.record_audit(
            &ipseity_core::AuditEvent::AccessDenied {
                key: None,
                operation: "verify",
                reason: "consent",
            },
            Some(subject),
            ctx.purpose(),
        )?;
        return Err(crate::error::CliError::input(
            "no_consent",
            format!(
                "{subject} has not consented to {}, or has withdrawn consent",
                ctx.purpose().unwrap_or("any purpose")
            ),
        )
        .into());
    }
    let now = ipseity_store::attempts::unix_now();
    let gate = store.begin_attempt(subject, now, &AttemptPolicy::default())?;
    let Some(event) = gate.refusal() else {
        return Ok(());
    };
    store.record_audit(&event, Some(subject), ctx.purpose())?;
    Err(match gate {
        AttemptGate::Locked { retry_after_s } => crate::error::CliError::input(
            "too_many_attempts",
            format!("too many failed verifications of {subject}; try again in {retry_after_s} s"),
        ),
        _ => crate::error::CliError::input(
            "verification_disabled",
            format!(
                "too many failed verifications of {subject}: an administrator must run \
                 `ipseity unlock --subject {subject}`"
            ),
        ),
    }
    .into())
}

/// A progress bar on stderr, drawn only when stderr is a terminal.
fn progress(len: usize, what: &str) -> indicatif::ProgressBar {
    use std::io::IsTerminal as _;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{prefix} [{bar:30}] {pos}/{len} {elapsed_precise} (eta {eta})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(what.to_owned());
    bar
}
