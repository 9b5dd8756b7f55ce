//! The host side of an app environment's storage (`berth storage ensure`,
//! run as root): which directories must exist below
//! `<base_dir>/<app>/<env>/storage`, with which owner and mode. Pure: the
//! executor observes each directory and changes only what differs.
//!
//! Root owns the structure (`storage/` and every directory between it and
//! a storage path), so neither the deploy user nor the app can swap a part
//! of it for a link; the app's user owns each storage path itself and what
//! it writes there.

use crate::config::settings::StoragePath;
use crate::config::values::{AbsPath, AppId, EnvName};

/// The containers' user and group (`www-data` in the runtime image).
pub const APP_UID: u32 = 33;

/// One directory below the app environment's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dir {
    /// Relative to the app environment's directory, e.g. `storage/var`.
    pub path: String,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

/// What `berth storage ensure` was asked for, every part validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub base_dir: AbsPath,
    pub app: AppId,
    pub env: EnvName,
    pub paths: Vec<StoragePath>,
}

impl Request {
    /// The app environment's directory, which the deploy made.
    pub fn env_dir(&self) -> AbsPath {
        self.base_dir.join(&format!("{}/{}", self.app, self.env))
    }

    /// The directories, parents first, each once.
    pub fn dirs(&self) -> Vec<Dir> {
        let structure = |path: String| Dir {
            path,
            uid: 0,
            gid: 0,
            mode: 0o755,
        };
        let mut dirs = vec![structure("storage".to_string())];
        for path in &self.paths {
            let parts: Vec<&str> = path.as_str().split('/').collect();
            for depth in 1..parts.len() {
                let parent = format!("storage/{}", parts[..depth].join("/"));
                if !dirs.iter().any(|d| d.path == parent) {
                    dirs.push(structure(parent));
                }
            }
            dirs.push(Dir {
                path: format!("storage/{path}"),
                uid: APP_UID,
                gid: APP_UID,
                mode: 0o750,
            });
        }
        dirs
    }

    /// The arguments that ask a host's root berth for this.
    pub fn args(&self) -> Vec<String> {
        let mut args: Vec<String> = [
            "storage",
            "ensure",
            "--base-dir",
            self.base_dir.as_str(),
            "--app",
            self.app.as_str(),
            "--env",
            self.env.as_str(),
        ]
        .map(String::from)
        .to_vec();
        for path in &self.paths {
            args.extend(["--path".to_string(), path.to_string()]);
        }
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_owns_the_structure_and_the_app_its_paths() {
        let request = Request {
            base_dir: "/srv/berth".parse().unwrap(),
            app: "shop".parse().unwrap(),
            env: "test".parse().unwrap(),
            paths: vec![
                "data".parse().unwrap(),
                "var/sessions".parse().unwrap(),
                "var/cache/pages".parse().unwrap(),
            ],
        };
        let dirs: Vec<String> = request
            .dirs()
            .iter()
            .map(|d| format!("{} {}:{} {:o}", d.path, d.uid, d.gid, d.mode))
            .collect();
        assert_eq!(
            dirs,
            [
                "storage 0:0 755",
                "storage/data 33:33 750",
                "storage/var 0:0 755",
                "storage/var/sessions 33:33 750",
                "storage/var/cache 0:0 755",
                "storage/var/cache/pages 33:33 750",
            ]
        );
        assert_eq!(request.env_dir().as_str(), "/srv/berth/shop/test");
        assert_eq!(
            request.args().join(" "),
            "storage ensure --base-dir /srv/berth --app shop --env test --path data --path var/sessions --path var/cache/pages"
        );
    }
}
