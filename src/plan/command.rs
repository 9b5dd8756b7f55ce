//! Remote commands as data: the exact argv a plan's step runs on a host and
//! how long it may take, built here by pure functions; `exec::apply` only
//! runs them. A command's `Display` is its `--dry-run` line: the argv
//! shell-quoted, berth's embedded scripts shown by name.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use super::release::Slot;
use super::scripts::{self, Script};
use crate::config::inventory::DockerAccess;
use crate::config::values::{AbsPath, AppId, CommandArg, EnvName};

/// One command run on a host over SSH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteCommand {
    /// The program and its arguments, passed to the host as they are
    /// (each quoted for the remote shell by the SSH layer).
    pub argv: Vec<String>,
    /// How long it may run before berth gives up on it.
    pub timeout: Duration,
}

impl RemoteCommand {
    fn new<S: Into<String>>(argv: impl IntoIterator<Item = S>, timeout: Duration) -> RemoteCommand {
        RemoteCommand {
            argv: argv.into_iter().map(Into::into).collect(),
            timeout,
        }
    }

    /// `bash -c SCRIPT bash ARGS…`: the script's `$1…` are `args`.
    fn script<S: Into<String>>(
        shell: &str,
        script: Script,
        args: impl IntoIterator<Item = S>,
        timeout: Duration,
    ) -> RemoteCommand {
        let mut argv = vec![
            shell.to_string(),
            "-c".into(),
            script.text.into(),
            shell.into(),
        ];
        argv.extend(args.into_iter().map(Into::into));
        RemoteCommand { argv, timeout }
    }
}

impl fmt::Display for RemoteCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, arg) in self.argv.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            match scripts::ALL.iter().find(|s| s.text == arg) {
                Some(script) => write!(f, "<{} script>", script.name)?,
                None => f.write_str(&shell_quoted(arg))?,
            }
        }
        Ok(())
    }
}

/// A word as a POSIX shell reads it back: plain words as they are, others
/// in single quotes (a single quote inside as `'\''`).
pub fn shell_quoted(word: &str) -> Cow<'_, str> {
    let plain = !word.is_empty()
        && word.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, '.' | '_' | '-' | '/' | '=' | ':' | '@' | '%' | '+' | ',')
        });
    if plain {
        Cow::Borrowed(word)
    } else {
        Cow::Owned(format!("'{}'", word.replace('\'', r"'\''")))
    }
}

/// How long a command may take. Each bounds a step that could otherwise
/// hang a deploy (a stuck docker daemon, a full disk), with room for the
/// slowest host seen.
pub mod timeouts {
    use std::time::Duration;

    /// `mkdir -p` of a directory.
    pub const MKDIR: Duration = Duration::from_secs(30);
    /// Renaming the synced code into place (removing a leftover first).
    pub const MOVE_INTO_PLACE: Duration = Duration::from_secs(300);
    /// Writing the rendered files, the secrets or `state.json`.
    pub const WRITE_FILES: Duration = Duration::from_secs(60);
    /// How long the remote rsync waits for the sync lock (a sync left
    /// running by a killed berth).
    pub const SYNC_LOCK_WAIT: Duration = Duration::from_secs(600);
    /// `berth egress apply` as root.
    pub const EGRESS: Duration = Duration::from_secs(60);
    /// `berth storage ensure` as root (it may make and format the image).
    pub const STORAGE: Duration = Duration::from_secs(300);
    /// Keeping a replaced slot's logs (up to 30 MB a container).
    pub const SAVE_LOGS: Duration = Duration::from_secs(120);
    /// How long compose up waits for the slot's compose lock.
    pub const COMPOSE_LOCK_WAIT: Duration = Duration::from_secs(600);
    /// compose up itself, after the lock.
    pub const COMPOSE_UP: Duration = Duration::from_secs(300);
    /// The slot's last log lines, shown when its health check fails.
    pub const COMPOSE_LOGS: Duration = Duration::from_secs(30);
    /// The front switch: its lock (60 s in the script), `nginx -t`, the
    /// reload and the wait for the old workers (10 s in the script).
    pub const SWITCH_FRONT: Duration = Duration::from_secs(120);
    /// Removing old release directories.
    pub const PRUNE: Duration = Duration::from_secs(300);
    /// Between two probes of a slot's health path.
    pub const HEALTH_INTERVAL: Duration = Duration::from_millis(200);
    /// How long the front may take to serve a switched release.
    pub const FRONT_DEADLINE: Duration = Duration::from_secs(15);
    /// Between two probes of the front.
    pub const FRONT_INTERVAL: Duration = Duration::from_millis(50);
}

fn words(args: &[CommandArg]) -> impl Iterator<Item = String> + '_ {
    args.iter().map(ToString::to_string)
}

/// `mkdir -p DIR`.
pub fn mkdir(dir: &AbsPath) -> RemoteCommand {
    RemoteCommand::new(["mkdir", "-p", dir.as_str()], timeouts::MKDIR)
}

/// Renames the synced `staging` directory to `code_dir`.
pub fn move_into_place(staging: &AbsPath, code_dir: &AbsPath) -> RemoteCommand {
    RemoteCommand::script(
        "sh",
        scripts::MOVE_INTO_PLACE,
        [staging.as_str(), code_dir.as_str()],
        timeouts::MOVE_INTO_PLACE,
    )
}

/// `berth ARGS` run as root on the host, through the inventory's
/// `root_berth`.
pub fn as_root(root_berth: &[CommandArg], args: Vec<String>, timeout: Duration) -> RemoteCommand {
    RemoteCommand::new(words(root_berth).chain(args), timeout)
}

/// Keeps the logs of `slot`'s containers in `dir` (`scripts::SAVE_LOGS`).
pub fn save_logs(
    docker: &DockerAccess,
    app: &AppId,
    env: &EnvName,
    slot: Slot,
    dir: &AbsPath,
    max_bytes: u64,
    keep: usize,
) -> RemoteCommand {
    let args = [
        dir.to_string(),
        max_bytes.to_string(),
        keep.to_string(),
        app.to_string(),
        env.to_string(),
        slot.name().to_string(),
    ];
    RemoteCommand::script(
        "bash",
        scripts::SAVE_LOGS,
        args.into_iter().chain(words(&docker.command)),
        timeouts::SAVE_LOGS,
    )
}

/// Starts a slot's containers from its compose file, under the slot's
/// compose lock (`scripts::COMPOSE_UP`).
pub fn compose_up(
    docker: &DockerAccess,
    project: &str,
    file: &AbsPath,
    lock: &AbsPath,
    subnet: &str,
) -> RemoteCommand {
    let wait = timeouts::COMPOSE_LOCK_WAIT.as_secs().to_string();
    let mut argv = vec!["flock".to_string(), "-w".into(), wait, lock.to_string()];
    argv.extend(
        RemoteCommand::script(
            "bash",
            scripts::COMPOSE_UP,
            [
                project.to_string(),
                file.to_string(),
                subnet.to_string(),
                docker.command.len().to_string(),
            ]
            .into_iter()
            .chain(words(&docker.command))
            .chain(words(&docker.compose_command)),
            timeouts::COMPOSE_UP,
        )
        .argv,
    );
    RemoteCommand::new(argv, timeouts::COMPOSE_LOCK_WAIT + timeouts::COMPOSE_UP)
}

/// A slot's last 20 log lines, from compose.
pub fn compose_logs(docker: &DockerAccess, project: &str, file: &AbsPath) -> RemoteCommand {
    let args = [
        "-p",
        project,
        "-f",
        file.as_str(),
        "logs",
        "--no-color",
        "--tail",
        "20",
    ];
    RemoteCommand::new(
        words(&docker.compose_command).chain(args.map(String::from)),
        timeouts::COMPOSE_LOGS,
    )
}

/// Installs `staged` as the front's `vhost` under the front lock, tests
/// and reloads the front (`scripts::SWITCH_FRONT`).
pub fn switch_front(
    lock: &AbsPath,
    vhost: &AbsPath,
    staged: &AbsPath,
    pid_file: Option<&AbsPath>,
    test: &[CommandArg],
    reload: &[CommandArg],
) -> RemoteCommand {
    let args = [
        lock.to_string(),
        vhost.to_string(),
        staged.to_string(),
        pid_file.map_or(String::new(), ToString::to_string),
        test.len().to_string(),
    ];
    RemoteCommand::script(
        "bash",
        scripts::SWITCH_FRONT,
        args.into_iter().chain(words(test)).chain(words(reload)),
        timeouts::SWITCH_FRONT,
    )
}

/// `rm -rf -- DIRS…`.
pub fn remove(dirs: &[AbsPath]) -> RemoteCommand {
    let argv = ["rm", "-rf", "--"].map(String::from);
    RemoteCommand::new(
        argv.into_iter().chain(dirs.iter().map(ToString::to_string)),
        timeouts::PRUNE,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_only_when_a_shell_would_split_or_expand_them() {
        assert_eq!(
            shell_quoted("/srv/berth/a-b_c.d:1@x%+,="),
            "/srv/berth/a-b_c.d:1@x%+,="
        );
        assert_eq!(shell_quoted(""), "''");
        assert_eq!(shell_quoted("a b"), "'a b'");
        assert_eq!(shell_quoted("$HOME"), "'$HOME'");
        assert_eq!(shell_quoted("it's"), r"'it'\''s'");
        assert_eq!(shell_quoted("*"), "'*'");
    }

    #[test]
    fn scripts_show_by_name_and_the_rest_exactly() {
        let dirs: Vec<AbsPath> = vec![
            "/srv/b/x/t/releases/v1".parse().unwrap(),
            "/srv/b/x/t/releases/v2".parse().unwrap(),
        ];
        assert_eq!(
            remove(&dirs).to_string(),
            "rm -rf -- /srv/b/x/t/releases/v1 /srv/b/x/t/releases/v2"
        );
        let staging: AbsPath = "/srv/b/releases/.staging-v1".parse().unwrap();
        let code: AbsPath = "/srv/b/releases/v1/code".parse().unwrap();
        let moved = move_into_place(&staging, &code);
        assert_eq!(
            moved.to_string(),
            "sh -c <MOVE_INTO_PLACE script> sh /srv/b/releases/.staging-v1 /srv/b/releases/v1/code"
        );
        assert_eq!(moved.argv[2], scripts::MOVE_INTO_PLACE.text);
        assert_eq!(moved.timeout, Duration::from_secs(300));
    }
}
