//! Everything berth reads from files: `release.yml`, `app.yml` and the host
//! inventory. Parsing, typed values and semantic checks live here and nowhere
//! else. No network, no environment reads.

pub mod app;
pub mod decode;
pub mod dns;
pub mod inventory;
pub mod release;
pub mod settings;
pub mod values;
pub mod yaml;

use std::path::{Path, PathBuf};

pub use app::AppFile;
pub use decode::{Problem, Problems};
pub use inventory::{Host, Inventory};
pub use release::ReleaseFile;

/// The two files of a management repository, checked against each other.
#[derive(Debug, Clone)]
pub struct AppDir {
    pub release: ReleaseFile,
    pub app: AppFile,
}

/// Reads a file berth will parse, refusing what is too large or not UTF-8.
///
/// The file is opened without following a symbolic link (`O_NOFOLLOW`),
/// must be a regular file by the opened handle's own metadata, and is read
/// through a hard limit: a link to `/dev/zero`, a FIFO or a file that grows
/// after it was opened is refused without being read past the limit.
pub fn read_text(path: &Path) -> Result<String, Problems> {
    read_text_limited(path, yaml::MAX_FILE_BYTES)
}

/// `read_text` for a file that may be up to `limit` bytes.
pub fn read_text_limited(path: &Path, limit: usize) -> Result<String, Problems> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let problem = |message: String, hint: &str| {
        Problems(vec![Problem {
            file: path.display().to_string(),
            line: None,
            column: None,
            key: String::new(),
            message,
            hint: hint.to_string(),
        }])
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        // Not blocking on a FIFO; a regular file ignores it.
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => problem(
                "is a symbolic link, which berth does not follow".into(),
                "commit the file itself, not a link to it",
            ),
            _ => problem(format!("cannot read: {e}"), "check the path"),
        })?;
    let metadata = file
        .metadata()
        .map_err(|e| problem(format!("cannot read: {e}"), "check the path"))?;
    if !metadata.is_file() {
        return Err(problem(
            "is not a regular file".into(),
            "give the path of the file itself",
        ));
    }
    if metadata.len() > limit as u64 {
        return Err(problem(
            format!(
                "file is {} bytes, more than the {limit} bytes berth reads",
                metadata.len(),
            ),
            "configuration files are small; check that the right file was given",
        ));
    }
    let mut bytes = Vec::new();
    file.take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| problem(format!("cannot read: {e}"), "check the path"))?;
    if bytes.len() > limit {
        // It grew after it was opened.
        return Err(problem(
            format!("file is more than the {} bytes berth reads", limit),
            "configuration files are small; check that the right file was given",
        ));
    }
    String::from_utf8(bytes)
        .map_err(|_| problem("file is not UTF-8 text".into(), "save the file as UTF-8"))
}

impl AppDir {
    pub fn load(dir: &Path) -> Result<AppDir, Problems> {
        let release_path = dir.join(release::FILE_NAME);
        let app_path = dir.join(app::FILE_NAME);
        AppDir::parse(
            (
                &release_path.display().to_string(),
                read_text(&release_path),
            ),
            (&app_path.display().to_string(), read_text(&app_path)),
        )
    }

    /// Parses the two files from their texts (read from a directory or
    /// from a commit), each named as errors should name it.
    pub fn parse(
        (release_file, release_text): (&str, Result<String, Problems>),
        (app_file, app_text): (&str, Result<String, Problems>),
    ) -> Result<AppDir, Problems> {
        let release = release_text.and_then(|text| ReleaseFile::parse(release_file, &text));
        let app = app_text.and_then(|text| AppFile::parse(app_file, &text));
        match (release, app) {
            (Ok(release), Ok(app)) => AppDir::from_parts(release, app, release_file),
            (release, app) => Err(Problems::merge(
                [release.err(), app.err()].into_iter().flatten(),
            )),
        }
    }

    /// Checks that every environment `release.yml` asks for exists in `app.yml`.
    pub fn from_parts(
        release: ReleaseFile,
        app: AppFile,
        release_file: &str,
    ) -> Result<AppDir, Problems> {
        let known: Vec<&str> = app.environments.iter().map(|e| e.name.as_str()).collect();
        let problems: Vec<Problem> = release
            .environments
            .iter()
            .filter(|r| app.environment(&r.env).is_none())
            .map(|r| Problem {
                file: release_file.to_string(),
                line: Some(r.mark.line),
                column: Some(r.mark.column),
                key: format!("environments.{}", r.env),
                message: format!("environment {} is not defined in app.yml", r.env),
                hint: format!("this app's environments are: {}", known.join(", ")),
            })
            .collect();
        if problems.is_empty() {
            Ok(AppDir { release, app })
        } else {
            Err(Problems(problems))
        }
    }

    /// Checks that each environment's host exists and serves that environment.
    pub fn check_hosts(&self, inventory: &Inventory, app_file: &str) -> Result<(), Problems> {
        let known: Vec<&str> = inventory.hosts.iter().map(|h| h.name.as_str()).collect();
        let mut problems = Vec::new();
        for env in &self.app.environments {
            let problem = |message: String, hint: String| Problem {
                file: app_file.to_string(),
                line: Some(env.marks.host.line),
                column: Some(env.marks.host.column),
                key: format!("environments.{}.host", env.name),
                message,
                hint,
            };
            match inventory.host(&env.host) {
                None => problems.push(problem(
                    format!("host {} is not in the host inventory", env.host),
                    format!("the inventory's hosts are: {}", known.join(", ")),
                )),
                Some(host) if !host.environments.contains(&env.name) => problems.push(problem(
                    format!("host {} does not serve environment {}", env.host, env.name),
                    "choose a host whose inventory entry lists this environment".to_string(),
                )),
                Some(host) => {
                    if let (Some(mail), None) = (&self.app.mail, &host.mail) {
                        problems.push(Problem {
                            line: Some(mail.mark.line),
                            column: Some(mail.mark.column),
                            key: "mail".to_string(),
                            ..problem(
                                format!(
                                    "environment {} runs on host {}, which has no mail relay",
                                    env.name, env.host
                                ),
                                format!(
                                    "name the relay in the host inventory \
                                     (hosts.{}.mail.relay), or remove mail from app.yml",
                                    env.host
                                ),
                            )
                        });
                    }
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Problems(problems))
        }
    }
}

impl Inventory {
    pub fn load(path: &Path) -> Result<Inventory, Problems> {
        let text = read_text(path)?;
        Inventory::parse(&path.display().to_string(), &text)
    }
}

/// The path of `app.yml` inside an app directory, as errors name it.
pub fn app_file_path(dir: &Path) -> PathBuf {
    dir.join(app::FILE_NAME)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(result: Result<String, Problems>) -> String {
        result.unwrap_err().to_string()
    }

    #[test]
    fn config_files_are_read_without_following_links() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real.yml");
        std::fs::write(&target, "environments: {}\n").unwrap();
        let link = dir.path().join("release.yml");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert_eq!(
            message(read_text(&link)),
            format!(
                "1 problem in the configuration:\n{}: is a symbolic link, which berth does not follow\n  hint: commit the file itself, not a link to it\n",
                link.display()
            )
        );
        assert_eq!(read_text(&target).unwrap(), "environments: {}\n");
    }

    #[test]
    fn a_link_to_dev_zero_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("release.yml");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        let started = std::time::Instant::now();
        assert!(message(read_text(&link))
            .contains(": is a symbolic link, which berth does not follow\n"));
        // Named directly, the device is not a regular file.
        assert_eq!(
            message(read_text(Path::new("/dev/zero"))),
            "1 problem in the configuration:\n/dev/zero: is not a regular file\n  hint: give the path of the file itself\n"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn a_fifo_is_refused_without_waiting_for_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("app.yml");
        let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        assert_eq!(
            message(read_text(&fifo)),
            format!(
                "1 problem in the configuration:\n{}: is not a regular file\n  hint: give the path of the file itself\n",
                fifo.display()
            )
        );
    }

    #[test]
    fn files_over_the_limit_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("release.yml");
        std::fs::write(&big, "#".repeat(yaml::MAX_FILE_BYTES + 1)).unwrap();
        assert_eq!(
            message(read_text(&big)),
            format!(
                "1 problem in the configuration:\n{}: file is {} bytes, more than the {} bytes berth reads\n  hint: configuration files are small; check that the right file was given\n",
                big.display(),
                yaml::MAX_FILE_BYTES + 1,
                yaml::MAX_FILE_BYTES
            )
        );
        std::fs::write(&big, "#".repeat(yaml::MAX_FILE_BYTES)).unwrap();
        assert_eq!(read_text(&big).unwrap().len(), yaml::MAX_FILE_BYTES);
    }
}
