//! Everything berth reads from files: `release.yml`, `app.yml` and the host
//! inventory. Parsing, typed values and semantic checks live here and nowhere
//! else. No network, no environment reads.

pub mod app;
pub mod decode;
pub mod inventory;
pub mod release;
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
pub fn read_text(path: &Path) -> Result<String, Problems> {
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
    let metadata = std::fs::metadata(path)
        .map_err(|e| problem(format!("cannot read: {e}"), "check the path"))?;
    if metadata.len() > yaml::MAX_FILE_BYTES as u64 {
        return Err(problem(
            format!(
                "file is {} bytes, more than the {} bytes berth reads",
                metadata.len(),
                yaml::MAX_FILE_BYTES
            ),
            "configuration files are small; check that the right file was given",
        ));
    }
    let bytes =
        std::fs::read(path).map_err(|e| problem(format!("cannot read: {e}"), "check the path"))?;
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
                Some(_) => {}
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
