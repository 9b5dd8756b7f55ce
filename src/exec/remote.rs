//! One SSH session per host (an OpenSSH ControlMaster through the `openssh`
//! crate). Every remote command and rsync ride that session. The host key is
//! checked strictly against the inventory's line: no trust on first use.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use openssh::{ControlPersist, KnownHosts, Session, SessionBuilder, Stdio as SshStdio};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::config::inventory::Host;
use crate::config::values::AbsPath;

/// A connected host.
pub struct Remote {
    session: Session,
    name: String,
    destination: String,
    port: u16,
    known_hosts: PathBuf,
    key: PathBuf,
    /// Holds the known_hosts file and the control socket.
    _dir: tempfile::TempDir,
}

/// The output of a remote command that succeeded.
pub struct Output {
    pub stdout: String,
}

impl Remote {
    /// Connects with `key`, trusting only the inventory's host key.
    pub async fn connect(host: &Host, key: &Path) -> Result<Remote> {
        let dir = tempfile::Builder::new()
            .prefix("berth-ssh-")
            .tempdir()
            .context("create a directory for the SSH control socket")?;
        let known_hosts = dir.path().join("known_hosts");
        std::fs::write(&known_hosts, format!("{}\n", host.ssh.known_hosts))
            .context("write the pinned host key")?;
        let destination = format!("{}@{}", host.ssh.user, host.ssh.address);
        let session = SessionBuilder::default()
            .port(host.ssh.port.get())
            .keyfile(key)
            .known_hosts_check(KnownHosts::Strict)
            .user_known_hosts_file(&known_hosts)
            .control_directory(dir.path())
            .connect_timeout(Duration::from_secs(15))
            .server_alive_interval(Duration::from_secs(15))
            // A berth killed mid-run cannot close its master connection;
            // idle for 30 s (no command, no lock held), the master exits.
            .control_persist(ControlPersist::IdleFor(
                std::num::NonZeroUsize::new(30).expect("non-zero"),
            ))
            .connect(&destination)
            .await
            .with_context(|| {
                format!(
                    "connect to host {} ({destination}, port {}) over SSH",
                    host.name,
                    host.ssh.port.get()
                )
            })?;
        Ok(Remote {
            session,
            name: host.name.to_string(),
            destination,
            port: host.ssh.port.get(),
            known_hosts,
            key: key.to_path_buf(),
            _dir: dir,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `argv` on the host (each argument quoted for the remote shell);
    /// fails with its stderr when it exits non-zero.
    pub async fn run(&self, what: &str, argv: &[&str]) -> Result<Output> {
        let output = self.output(argv, None).await?;
        if !output.status.success() {
            bail!(
                "{what} on host {} failed ({}): {}",
                self.name,
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(Output {
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        })
    }

    /// Runs `argv` and returns its raw result, whatever the exit status.
    pub async fn output(
        &self,
        argv: &[&str],
        stdin: Option<&[u8]>,
    ) -> Result<std::process::Output> {
        let (program, args) = argv.split_first().expect("a command has a program");
        let mut command = self.session.command(*program);
        command.args(args.iter().copied());
        command.stdout(SshStdio::piped()).stderr(SshStdio::piped());
        command.stdin(if stdin.is_some() {
            SshStdio::piped()
        } else {
            SshStdio::null()
        });
        let mut child = command
            .spawn()
            .await
            .with_context(|| format!("start `{program}` on host {}", self.name))?;
        if let Some(bytes) = stdin {
            let mut pipe = child.stdin().take().expect("stdin is piped");
            pipe.write_all(bytes)
                .await
                .with_context(|| format!("send input to `{program}` on host {}", self.name))?;
            drop(pipe);
        }
        child
            .wait_with_output()
            .await
            .with_context(|| format!("run `{program}` on host {}", self.name))
    }

    /// Reads a file, or `None` when it does not exist.
    pub async fn read_file(&self, path: &AbsPath) -> Result<Option<String>> {
        let output = self
            .output(
                &[
                    "sh",
                    "-c",
                    "test -e \"$1\" || exit 3; cat -- \"$1\"",
                    "sh",
                    path.as_str(),
                ],
                None,
            )
            .await?;
        match output.status.code() {
            Some(0) => Ok(Some(String::from_utf8_lossy(&output.stdout).into_owned())),
            Some(3) => Ok(None),
            _ => bail!(
                "read {path} on host {}: {}",
                self.name,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        }
    }

    /// Writes a file atomically: to `<path>.tmp`, then renamed.
    ///
    /// The temporary file is renamed only when it holds every byte sent and
    /// is on disk: a berth killed mid-write closes the pipe, and `cat` would
    /// otherwise take the early end of input for the end of the file.
    pub async fn write_file(&self, path: &AbsPath, contents: &[u8]) -> Result<()> {
        let length = contents.len().to_string();
        let output = self
            .output(
                &["sh", "-c", WRITE_FILE, "sh", path.as_str(), &length],
                Some(contents),
            )
            .await?;
        if !output.status.success() {
            bail!(
                "write {path} on host {}: {}",
                self.name,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(())
    }

    /// Writes a file only its owner may read (mode 0600, from the first
    /// byte on), atomically like `write_file`.
    pub async fn write_private_file(&self, path: &AbsPath, contents: &[u8]) -> Result<()> {
        let length = contents.len().to_string();
        let script = format!("umask 077\nrm -f -- \"$1.tmp\"\n{WRITE_FILE}");
        let output = self
            .output(
                &["sh", "-c", &script, "sh", path.as_str(), &length],
                Some(contents),
            )
            .await?;
        if !output.status.success() {
            bail!(
                "write {path} on host {}: {}",
                self.name,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(())
    }

    /// Takes an exclusive `flock` on the host, held until the returned guard
    /// is dropped or this process dies (the SSH channel closes, the remote
    /// holder exits, the kernel drops the lock): no stale locks.
    pub async fn lock(&self, path: &AbsPath, what: &str, wait: Duration) -> Result<HostLock<'_>> {
        // The lock file's directory is made in the same command: one round
        // trip, not two.
        let dir = path.as_str().rsplit_once('/').map_or("/", |(dir, _)| dir);
        let mut command = self.session.command("sh");
        command.args([
            "-c",
            "mkdir -p -- \"$1\" && exec flock -w \"$2\" \"$3\" sh -c 'echo locked && exec cat >/dev/null'",
            "sh",
            if dir.is_empty() { "/" } else { dir },
            &wait.as_secs().to_string(),
            path.as_str(),
        ]);
        command
            .stdin(SshStdio::piped())
            .stdout(SshStdio::piped())
            .stderr(SshStdio::null());
        let mut child = command
            .spawn()
            .await
            .with_context(|| format!("take the {what} lock on host {}", self.name))?;
        let stdout = child.stdout().take().expect("stdout is piped");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .await
            .with_context(|| format!("take the {what} lock on host {}", self.name))?;
        if line.trim() != "locked" {
            bail!(
                "the {what} lock {path} on host {} is held by another berth run for more than {}s",
                self.name,
                wait.as_secs()
            );
        }
        let stdin = child.stdin().take().expect("stdin is piped");
        Ok(HostLock {
            _stdin: stdin,
            _child: child,
        })
    }

    /// rsync from a local directory over this session's control socket.
    /// The remote rsync holds `lock` while it writes, waiting for it at
    /// most `lock_wait`.
    pub async fn rsync(
        &self,
        source: &Path,
        dest: &AbsPath,
        link_dest: Option<&AbsPath>,
        lock: &AbsPath,
        lock_wait: Duration,
    ) -> Result<()> {
        let ssh = format!(
            "ssh -o ControlPath={} -o ControlMaster=no -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile={} -o IdentitiesOnly=yes -i {} -p {}",
            self.session.control_socket().display(),
            self.known_hosts.display(),
            self.key.display(),
            self.port
        );
        let mut command = tokio::process::Command::new("rsync");
        // --checksum: with --link-dest, rsync's default size-and-mtime check
        // would hard-link a changed file of the same size and second from
        // the previous release; compare contents instead. --no-times: a
        // fresh checkout gives every file a new mtime, and rsync links a
        // file only when its preserved attributes match too; not keeping
        // mtimes lets an unchanged file be linked whatever its checkout
        // time (bench/compare measure 5 found 20 MB copied per release).
        // --no-links: no symbolic link reaches a host. A link could name
        // anything the containers mount (/etc/berth) or hold, and the app's
        // nginx follows none anyway (disable_symlinks); rsync says
        // "skipping non-regular file" for each.
        command.args([
            "-a",
            "--no-links",
            "--no-times",
            "--checksum",
            "--delete",
            "--exclude=.git",
            "--chmod=D755,F644",
            "-e",
            &ssh,
        ]);
        if let Some(prev) = link_dest {
            command.arg(format!("--link-dest={prev}"));
        }
        // Run by the remote shell: the path is a validated AbsPath.
        command.arg(format!(
            "--rsync-path=flock -w {} {lock} rsync",
            lock_wait.as_secs()
        ));
        command
            .arg(format!("{}/", source.display()))
            .arg(format!("{}:{dest}/", self.destination))
            .stdin(Stdio::null());
        let output = command
            .output()
            .await
            .with_context(|| format!("start rsync to host {}", self.name))?;
        if !output.status.success() {
            bail!(
                "rsync {} to {dest} on host {} failed ({}): {}",
                source.display(),
                self.name,
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(())
    }

    /// One HTTP/1.0 GET run on the host itself (slot ports are published
    /// only there); returns the status code and the body.
    pub async fn http_get(
        &self,
        address: &str,
        port: &str,
        path: &str,
        domain: &str,
    ) -> Result<(u16, String)> {
        let output = self
            .output(
                &["bash", "-c", HTTP_GET, "bash", address, port, path, domain],
                None,
            )
            .await?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let status = stdout
            .split(' ')
            .nth(1)
            .and_then(|s| s.trim().parse().ok())
            .with_context(|| {
                format!(
                    "no HTTP answer from {address}:{port} on host {}: {}",
                    self.name,
                    String::from_utf8_lossy(&output.stderr).trim()
                )
            })?;
        let body = stdout
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_string())
            .unwrap_or_default();
        Ok((status, body))
    }

    /// Starts `argv` on the host and returns its output line by line, as
    /// it comes (bounded memory, however long the output).
    pub async fn lines(&self, argv: &[&str]) -> Result<RemoteLines<'_>> {
        self.spawn_lines(argv, SshStdio::null()).await
    }

    /// Like `lines`, with the command's stderr passed to berth's.
    pub async fn lines_with_stderr(&self, argv: &[&str]) -> Result<RemoteLines<'_>> {
        self.spawn_lines(argv, SshStdio::inherit()).await
    }

    async fn spawn_lines(&self, argv: &[&str], stderr: SshStdio) -> Result<RemoteLines<'_>> {
        let (program, args) = argv.split_first().expect("a command has a program");
        let mut command = self.session.command(*program);
        command.args(args.iter().copied());
        command
            .stdin(SshStdio::null())
            .stdout(SshStdio::piped())
            .stderr(stderr);
        let mut child = command
            .spawn()
            .await
            .with_context(|| format!("start `{program}` on host {}", self.name))?;
        let stdout = child.stdout().take().expect("stdout is piped");
        Ok(RemoteLines {
            lines: BufReader::new(stdout).lines(),
            _child: child,
        })
    }

    /// The host's Docker Engine API, through this session: a local unix
    /// socket forwarded to the host's Docker socket.
    pub async fn docker(&self, socket: &AbsPath) -> Result<bollard::Docker> {
        let local = self._dir.path().join("docker.sock");
        if !local.exists() {
            self.session
                .request_port_forward(
                    openssh::ForwardType::Local,
                    local.clone(),
                    Path::new(socket.as_str()),
                )
                .await
                .with_context(|| format!("forward {socket} on host {} over SSH", self.name))?;
        }
        let path = local
            .to_str()
            .context("the forwarded socket's path is not UTF-8")?;
        bollard::Docker::connect_with_unix(path, 60, bollard::API_DEFAULT_VERSION)
            .context("connect to the forwarded Docker socket")?
            .negotiate_version()
            .await
            .with_context(|| format!("reach Docker on host {}", self.name))
    }

    pub async fn close(self) -> Result<()> {
        self.session
            .close()
            .await
            .with_context(|| format!("close the SSH session to host {}", self.name))
    }
}

/// The output of a remote command, line by line.
pub struct RemoteLines<'s> {
    lines: tokio::io::Lines<BufReader<openssh::ChildStdout>>,
    _child: openssh::Child<&'s Session>,
}

impl RemoteLines<'_> {
    pub async fn next_line(&mut self) -> Result<Option<String>> {
        Ok(self.lines.next_line().await?)
    }

    /// Waits for the command to end.
    pub async fn finish(self) -> Result<std::process::ExitStatus> {
        Ok(self._child.wait().await?)
    }
}

/// A lock held on a host; released on drop (the holder's stdin closes).
pub struct HostLock<'s> {
    _stdin: openssh::ChildStdin,
    _child: openssh::Child<&'s Session>,
}

/// Arguments: the file, its expected length in bytes.
const WRITE_FILE: &str = r#"cat > "$1.tmp" || exit 1
if [ "$(wc -c < "$1.tmp")" -ne "$2" ]; then rm -f -- "$1.tmp"; echo "incomplete input for $1" >&2; exit 1; fi
sync -- "$1.tmp" && mv -f -- "$1.tmp" "$1""#;

/// Arguments: address, port, path, Host header.
const HTTP_GET: &str = r#"exec 3<>"/dev/tcp/$1/$2" || exit 1
printf 'GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: berth\r\n\r\n' "$3" "$4" >&3
timeout 5 head -c 65536 <&3"#;
