//! The command line, and nothing else: clap types whose doc comments are the
//! help text. Commands turn these into settings; clap stops here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Releases outside developers' nginx + PHP plugins to Docker hosts, with
/// GitLab as the control plane. Each pipeline stage runs one subcommand.
#[derive(Debug, Parser)]
#[command(
    name = "berth",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Print what would be done, change nothing.
    #[arg(long, global = true)]
    pub dry_run: bool,
    /// Format of the result on stdout.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Print only errors.
    #[arg(long, short, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print each step as it runs.
    #[arg(long, short, global = true)]
    pub verbose: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check release.yml, app.yml and the host inventory offline.
    ///
    /// For editors, pre-commit hooks and the merge request job. Every problem
    /// in every file is reported, with file, line, column, key and a hint.
    Validate(ValidateArgs),
    /// Render an environment's configuration (front vhost, nginx, php-fpm,
    /// php.ini, compose) into a directory.
    Render(RenderArgs),
    /// Check a release merge request: only release.yml changed, it is valid,
    /// each requested tag exists. Runs in the MR pipeline, without secrets.
    Check(MergeRequestArgs),
    /// Keep the plan note on a release merge request up to date.
    Plan(MergeRequestArgs),
    /// Check out the requested tag in the codes/ submodule and verify it.
    Checkout(EnvSelection),
    /// Release an environment: start the new release beside the live one,
    /// switch the front nginx when it is healthy.
    Deploy(DeployArgs),
    /// Switch an environment back to its warm backup, or redeploy an older
    /// release.
    Rollback(RollbackArgs),
    /// Restart an environment without downtime: the active release starts
    /// afresh in the idle slot and takes over when healthy.
    Restart(RestartArgs),
    /// Show what runs where: active and backup slots, releases, health.
    Status(StatusArgs),
    /// Read an app's logs: container output and the front nginx's logs.
    Logs(LogsArgs),
    /// Report a release back to GitLab: MR note, commit status, release tag.
    Report(ReportArgs),
    /// Onboard and manage apps.
    #[command(subcommand)]
    App(AppCommand),
    /// Open a release merge request that sets an environment's tag.
    Request(RequestArgs),
    /// Release the bundled example plugin on this machine's Docker and
    /// print its URL.
    Demo(DemoArgs),
    /// Host side of an app's logs key: the forced command in
    /// `authorized_keys`. Serves the request in $SSH_ORIGINAL_COMMAND, for
    /// one app only, and refuses anything else.
    #[command(hide = true)]
    ServeLogs(ServeLogsArgs),
    /// Host side of the egress policy, run as root by a deploy: set what
    /// one app environment's containers may reach in the host's firewall.
    #[command(subcommand)]
    Egress(EgressCommand),
    /// Host side of an app environment's storage, run as root by a deploy.
    #[command(subcommand)]
    Storage(StorageCommand),
    /// Host-wide jobs, run as root on the host.
    #[command(subcommand)]
    Host(HostCommand),
    /// Keep the apps' DNS records in the zones the inventory names.
    #[command(subcommand)]
    Dns(DnsCommand),
}

#[derive(Debug, Subcommand)]
pub enum HostCommand {
    /// At boot, before Docker starts the slots again: mount every app
    /// environment's storage and set its egress policy, as the last
    /// `storage ensure` and `egress apply` recorded them under BASE_DIR.
    /// Idempotent.
    Boot(HostBootArgs),
}

#[derive(Debug, Args)]
pub struct HostBootArgs {
    /// The host's base directory (the inventory's base_dir).
    #[arg(long, value_name = "DIR")]
    pub base_dir: String,
}

#[derive(Debug, Subcommand)]
pub enum StorageCommand {
    /// Make the storage of one app environment: an ext4 image of SIZE
    /// mounted at BASE_DIR/APP/ENV/storage, and the directories below it
    /// (root owns the structure, the containers' user (33) each path).
    /// Idempotent; never follows a link.
    Ensure(StorageEnsureArgs),
}

#[derive(Debug, Args)]
pub struct StorageEnsureArgs {
    /// The host's base directory (the inventory's base_dir).
    #[arg(long, value_name = "DIR")]
    pub base_dir: String,
    /// The app id.
    #[arg(long)]
    pub app: String,
    /// The app environment.
    #[arg(long)]
    pub env: String,
    /// The quota (app.yml's limits.storage, e.g. 256M): the size of the
    /// storage's own file system, an ext4 image loop-mounted at storage/.
    #[arg(long, value_name = "SIZE")]
    pub size: String,
    /// A storage path of the app's berth.yml; repeatable.
    #[arg(long = "path", value_name = "PATH", required = true)]
    pub paths: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum EgressCommand {
    /// Set one app environment's allow-list and the host's base rules
    /// (iptables), in one transaction. Idempotent.
    Apply(EgressApplyArgs),
}

#[derive(Debug, Args)]
pub struct EgressApplyArgs {
    /// The app id.
    #[arg(long)]
    pub app: String,
    /// The app environment.
    #[arg(long)]
    pub env: String,
    /// A port of the environment's slots (each names a slot network);
    /// give both.
    #[arg(long = "slot-port", value_name = "PORT", required = true)]
    pub slot_ports: Vec<String>,
    /// A destination the app may reach, ADDRESS:PORT (IPv4, TCP);
    /// repeatable. Without any, the app reaches nothing outside its slot.
    #[arg(long, value_name = "ADDRESS:PORT")]
    pub allow: Vec<String>,
    /// A destination the app may open at most N new connections to a
    /// minute (both slots together), ADDRESS:PORT=N; repeatable. The mail
    /// relay is allowed this way.
    #[arg(long = "allow-per-minute", value_name = "ADDRESS:PORT=N")]
    pub allow_per_minute: Vec<String>,
    /// The host's base directory: the policy is recorded in
    /// BASE_DIR/APP/ENV/boot-egress.json for `berth host boot`.
    #[arg(long, value_name = "DIR")]
    pub base_dir: Option<String>,
}

#[derive(Debug, Args)]
pub struct AppDirArg {
    /// The management repository's checkout (holds release.yml and app.yml).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub app_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct InventoryArg {
    /// The host inventory file [default: $BERTH_INVENTORY].
    #[arg(long, value_name = "FILE")]
    pub inventory: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub app_dir: AppDirArg,
    #[command(flatten)]
    pub inventory: InventoryArg,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub app_dir: AppDirArg,
    #[command(flatten)]
    pub inventory: InventoryArg,
    /// The environment to render.
    #[arg(long, value_name = "ENV")]
    pub env: String,
    /// Where to write the files; with --dry-run, what to compare against.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The slot the release goes into; the other slot is rendered as backup.
    #[arg(long, default_value = "blue", value_parser = ["blue", "green"])]
    pub slot: String,
    /// The checked-out code whose berth.yml applies [default: APP_DIR/codes;
    /// without a checkout there, the release is rendered without one].
    #[arg(long, value_name = "DIR")]
    pub code: Option<PathBuf>,
    /// A directory of templates (`<file>.j2`) that replace the embedded ones
    /// [default: $BERTH_TEMPLATES_DIR].
    #[arg(long, value_name = "DIR")]
    pub templates: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct MergeRequestArgs {
    #[command(flatten)]
    pub app_dir: AppDirArg,
    #[command(flatten)]
    pub inventory: InventoryArg,
    /// The merge request's IID [default: $CI_MERGE_REQUEST_IID].
    #[arg(long, value_name = "IID")]
    pub merge_request: Option<u64>,
}

#[derive(Debug, Args)]
pub struct EnvSelection {
    #[command(flatten)]
    pub app_dir: AppDirArg,
    /// Only this environment [default: every environment release.yml names].
    #[arg(long, value_name = "ENV")]
    pub env: Option<String>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Outcome files written by `berth deploy --outcome`; missing files
    /// (deploy jobs that did not run) are skipped.
    #[arg(long, value_name = "FILE")]
    pub outcome: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct HostAccessArgs {
    #[command(flatten)]
    pub inventory: InventoryArg,
    /// The private SSH key for the hosts [default: $BERTH_SSH_KEY].
    #[arg(long, value_name = "FILE")]
    pub ssh_key: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct EnvArgs {
    #[command(flatten)]
    pub app_dir: AppDirArg,
    #[command(flatten)]
    pub access: HostAccessArgs,
    /// The environment to act on.
    #[arg(long, value_name = "ENV")]
    pub env: String,
    /// A directory of templates (`<file>.j2`) that replace the embedded ones
    /// [default: $BERTH_TEMPLATES_DIR].
    #[arg(long, value_name = "DIR")]
    pub templates: Option<PathBuf>,
    /// How long a slot may take to answer its health path with 200.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub health_timeout: u64,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    #[command(flatten)]
    pub target: EnvArgs,
    /// The checked-out code to release [default: APP_DIR/codes].
    #[arg(long, value_name = "DIR")]
    pub code: Option<PathBuf>,
    /// Releases kept on the host besides the active and backup ones.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub keep: usize,
    /// The commit the checkout holds, as `berth checkout` verified it
    /// (its output BERTH_<ENV>_COMMIT). The release id then carries the
    /// commit, so a tag moved between two releases never reuses a release
    /// directory; the outcome records it too.
    #[arg(long, value_name = "SHA")]
    pub commit: Option<String>,
    /// Write the outcome (success, or the failing step and last log lines)
    /// as JSON here, for `berth report`. Written on failure too.
    #[arg(long, value_name = "FILE")]
    pub outcome: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub target: EnvArgs,
    /// Redeploy this older release (still on the host) through the
    /// health-checked path, instead of switching to the backup.
    #[arg(long, value_name = "TAG")]
    pub to: Option<String>,
    /// Write the outcome as JSON here, for `berth report`.
    #[arg(long, value_name = "FILE")]
    pub outcome: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RestartArgs {
    #[command(flatten)]
    pub target: EnvArgs,
    /// Write the outcome as JSON here, for `berth report`.
    #[arg(long, value_name = "FILE")]
    pub outcome: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub app_dir: AppDirArg,
    #[command(flatten)]
    pub access: HostAccessArgs,
    /// Only this environment.
    #[arg(long, value_name = "ENV")]
    pub env: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogSource {
    App,
    Php,
    Nginx,
    Access,
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SlotChoice {
    Active,
    Backup,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    #[command(flatten)]
    pub target: EnvArgs,
    #[command(flatten)]
    pub query: LogQuery,
    /// A key the host accepts only for reading this app's logs (instead of
    /// the deploy key) [default: $BERTH_LOGS_KEY].
    #[arg(long, value_name = "FILE")]
    pub logs_key: Option<PathBuf>,
}

/// Which lines of which log; the same for `berth logs` and for a request
/// sent with an app's logs key.
#[derive(Debug, Clone, Args)]
pub struct LogQuery {
    /// Which logs to read, merged in time order (repeat the flag or
    /// separate them with commas, e.g. app,access).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [LogSource::App])]
    pub source: Vec<LogSource>,
    /// Only lines newer than this, e.g. 15m, 2h, 1d.
    #[arg(long, value_name = "DURATION")]
    pub since: Option<String>,
    /// Only the last N lines [default: 200 without --since].
    #[arg(long, value_name = "N")]
    pub tail: Option<u64>,
    /// Keep printing new lines until interrupted.
    #[arg(long)]
    pub follow: bool,
    /// Only lines matching this regular expression.
    #[arg(long, value_name = "RE")]
    pub grep: Option<String>,
    /// Which slot's containers to read.
    #[arg(long, value_enum, default_value_t = SlotChoice::Active)]
    pub slot: SlotChoice,
    /// Read the logs the host kept of this release's replaced containers
    /// (the release id as `berth status` shows it) instead of a running
    /// slot's.
    #[arg(long, value_name = "RELEASE", conflicts_with_all = ["slot", "follow"])]
    pub release: Option<String>,
}

/// What an app's logs key may ask the host: `logs --env ENV [query]`.
#[derive(Debug, Parser)]
#[command(name = "logs", no_binary_name = false)]
pub struct LogsRequest {
    #[arg(long, value_name = "ENV")]
    pub env: String,
    #[command(flatten)]
    pub query: LogQuery,
}

#[derive(Debug, Args)]
pub struct ServeLogsArgs {
    /// The only app whose logs this key may read.
    #[arg(long)]
    pub app: String,
    /// The hosts's berth base directory (holds `<app>/<env>/state.json`).
    #[arg(long, value_name = "DIR")]
    pub base_dir: PathBuf,
    /// The front nginx's per-app log directory.
    #[arg(long, value_name = "DIR")]
    pub log_dir: PathBuf,
    /// The Docker Engine socket.
    #[arg(long, value_name = "PATH", default_value = "/var/run/docker.sock")]
    pub docker_socket: PathBuf,
    /// The most bytes of log one request reads (before --grep filters).
    #[arg(long, value_name = "BYTES", default_value_t = 128 * 1024 * 1024)]
    pub max_bytes: u64,
    /// The longest a request without --follow may take, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 20)]
    pub max_seconds: u64,
    /// The longest a --follow request may last, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    pub max_follow_seconds: u64,
    /// The most requests of this app served at once (one lock file each
    /// in <base-dir>/.logs-sessions/).
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub max_sessions: u32,
    /// Before anything else, move into this prepared cgroup (a path below
    /// each hierarchy's root, e.g. berth/logs) and refuse to serve if that
    /// fails. Its limits bound every request of the key.
    #[arg(long, value_name = "PATH")]
    pub cgroup: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum DnsCommand {
    /// Show what a sync would change in each zone. Changes nothing.
    Plan(DnsArgs),
    /// Bring each zone to what the fleet's allocations say: A and AAAA
    /// records of every allocated domain, pointing at its host's public
    /// addresses, and nothing berth does not own touched.
    Apply(DnsApplyArgs),
    /// Show how a change of the allocations file changes the names berth
    /// publishes, and keep that as a note on the merge request. Reads no
    /// DNS server: it needs no DNS credential.
    Diff(DnsDiffArgs),
}

#[derive(Debug, Args)]
pub struct DnsDiffArgs {
    #[command(flatten)]
    pub inventory: InventoryArg,
    /// The allocations file before the change (e.g. from the merge
    /// request's diff base); none: no names before.
    #[arg(long, value_name = "FILE")]
    pub before: Option<PathBuf>,
    /// The host inventory before the change, when it changes too (host
    /// addresses, zones) [default: the inventory].
    #[arg(long, value_name = "FILE", requires = "before")]
    pub before_inventory: Option<PathBuf>,
    /// The allocations file after the change.
    #[arg(long, value_name = "FILE", default_value = "allocations.yml")]
    pub allocations: PathBuf,
    /// Keep the result as berth's DNS note on the merge request
    /// (`CI_PROJECT_PATH`, `CI_API_V4_URL`, `BERTH_GITLAB_TOKEN`).
    #[arg(long)]
    pub note: bool,
    /// The merge request [default: $CI_MERGE_REQUEST_IID].
    #[arg(long, value_name = "IID")]
    pub merge_request: Option<u64>,
}

#[derive(Debug, Args)]
pub struct DnsArgs {
    #[command(flatten)]
    pub inventory: InventoryArg,
    /// The fleet's allocations file, from a checkout of the fleet
    /// repository.
    #[arg(long, value_name = "FILE", default_value = "allocations.yml")]
    pub allocations: PathBuf,
    /// Only this zone (repeat the flag for more); all zones by default.
    #[arg(long = "zone", value_name = "ZONE")]
    pub zones: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DnsApplyArgs {
    #[command(flatten)]
    pub common: DnsArgs,
    /// Apply even when a zone's updates or deletes exceed the inventory's
    /// dns.max_change_percent of the names berth owns there.
    #[arg(long)]
    pub allow_large_change: bool,
}

#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// Create an app's code and management repositories, variables,
    /// protections and its host and port allocation. Idempotent.
    Create(AppCreateArgs),
}

#[derive(Debug, Args)]
pub struct AppCreateArgs {
    /// The app id, e.g. shop-search.
    #[arg(long)]
    pub id: String,
    /// The outside developer's GitLab user name.
    #[arg(long)]
    pub owner: String,
    /// The group of code repositories; the app's is <GROUP>/<ID>.
    #[arg(long, value_name = "GROUP", default_value = "plugins")]
    pub plugins_group: String,
    /// The group of management repositories; the app's is <GROUP>/<ID>.
    #[arg(long, value_name = "GROUP", default_value = "deploy")]
    pub deploy_group: String,
    /// The fleet repository, which holds the allocations file.
    #[arg(long, value_name = "PROJECT", default_value = "platform/fleet")]
    pub fleet: String,
    /// The allocations file in the fleet repository.
    #[arg(long, value_name = "PATH", default_value = "allocations.yml")]
    pub allocations: String,
    /// The management repository's CI/CD configuration (`ci_config_path`):
    /// a file of the platform's templates project pinned to a protected
    /// tag, e.g. management.yml@platform/ci-templates:v1.0.0. Every
    /// pipeline of the repository, merge request ones included, runs it.
    #[arg(long, value_name = "FILE@PROJECT:TAG")]
    pub ci_config: String,
    /// The app's environments (repeat the flag).
    #[arg(long = "env", value_name = "ENV", default_values = ["test", "production"])]
    pub envs: Vec<String>,
    /// Domains are <ID>.<BASE> in production and <ID>.<ENV>.<BASE> elsewhere.
    #[arg(long, value_name = "BASE", default_value = "berth.localhost")]
    pub domain_base: String,
    /// A domain of one environment instead of the derived one (repeat the
    /// flag for more).
    #[arg(long = "domain", value_name = "ENV=DOMAIN")]
    pub domains: Vec<String>,
    // The host inventory gives the exact `authorized_keys` line of the
    // logs key (base and log directories of the app's hosts).
    #[command(flatten)]
    pub inventory: InventoryArg,
}

#[derive(Debug, Args)]
pub struct RequestArgs {
    #[command(flatten)]
    pub app_dir: AppDirArg,
    /// The management project [default: $CI_PROJECT_PATH, else the
    /// checkout's `origin` remote].
    #[arg(long, value_name = "GROUP/APP")]
    pub project: Option<String>,
    /// The environment to release to.
    #[arg(long, value_name = "ENV")]
    pub env: String,
    /// The tag of the code repository to release.
    #[arg(long = "ref", value_name = "TAG")]
    pub tag: String,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Exit once the example is serving instead of waiting for Ctrl-C.
    #[arg(long)]
    pub no_wait: bool,
    /// Release this plugin checkout instead of the bundled example: your
    /// own code, run on the local host the way production runs it. Each
    /// run is a new release (`local-<time>`).
    #[arg(long, value_name = "DIR")]
    pub code: Option<PathBuf>,
    /// The app.yml to release it with [default: the skeleton's, whose
    /// docroot is `public` and health path `/health.php`].
    #[arg(long, value_name = "FILE")]
    pub app_yml: Option<PathBuf>,
}
