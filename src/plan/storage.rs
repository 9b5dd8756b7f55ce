//! The host side of an app environment's storage (`berth storage ensure`,
//! run as root): which directories must exist below
//! `<base_dir>/<app>/<env>/storage`, with which owner and mode. Pure: the
//! executor observes each directory and changes only what differs.
//!
//! Root owns the structure (`storage/` and every directory between it and
//! a storage path), so neither the deploy user nor the app can swap a part
//! of it for a link; the app's user owns each storage path itself and what
//! it writes there.
//!
//! The quota is a file system of its own: an ext4 image of `limits.storage`
//! bytes (`storage.img`, sparse) loop-mounted at `storage/`, so a write
//! past it fails inside the app with "No space left on device" while other
//! apps and the host keep writing.

use crate::config::settings::StoragePath;
use crate::config::values::{AbsPath, AppId, ByteSize, EnvName};

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
    /// The quota: the size of the storage's file system.
    pub size: ByteSize,
    pub paths: Vec<StoragePath>,
    /// The user the app environment's directory must belong to: the one
    /// who ran berth through sudo (the deploy user). `None` when root ran
    /// it directly.
    pub owner: Option<u32>,
}

/// The image file and the image's file system, relative to the app
/// environment's directory.
pub const IMAGE: &str = "storage.img";
pub const MOUNT_POINT: &str = "storage";
/// Mounted so that nothing stored can run or act as a device.
pub const MOUNT_OPTIONS: &str = "loop,nosuid,nodev,noexec";

/// The storage's file system as found on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImageState {
    /// The image file's length, if it exists.
    pub len: Option<u64>,
    /// Whether a file system is mounted at `storage/`.
    pub mounted: bool,
}

/// One change to the storage's file system, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageAction {
    /// Create the image file (sparse) of `len` bytes, root-only.
    Create { len: u64 },
    /// `mkfs.ext4` on it: no reserved blocks, root owning its root.
    Format,
    /// Loop-mount it at `storage/`.
    Mount,
}

impl std::fmt::Display for ImageAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImageAction::Create { len } => write!(f, "create {IMAGE} ({len} bytes)"),
            ImageAction::Format => write!(f, "make an ext4 file system in {IMAGE}"),
            ImageAction::Mount => write!(f, "mount {IMAGE} at {MOUNT_POINT}/ ({MOUNT_OPTIONS})"),
        }
    }
}

/// What makes the storage's file system match the request. A quota that
/// differs from an existing image is not applied: shrinking a file system
/// that holds data is not done unattended, and growing one that is mounted
/// (and bind-mounted into running slots) needs an online resize that not
/// every host allows. The note says so, and docs/host-runtime.md how.
pub fn image_actions(size: ByteSize, state: ImageState) -> (Vec<ImageAction>, Option<String>) {
    let want = size.bytes();
    let mut actions = Vec::new();
    let mut note = None;
    match state.len {
        None => {
            if state.mounted {
                // Something else is mounted there: never format under it.
                note = Some(format!(
                    "{MOUNT_POINT}/ is a mount point without {IMAGE}; left as it is"
                ));
                return (actions, note);
            }
            actions.extend([ImageAction::Create { len: want }, ImageAction::Format]);
        }
        Some(len) if len != want => {
            note = Some(format!(
                "{IMAGE} holds {len} bytes, not the quota {want}: resize it by hand (docs/host-runtime.md)"
            ));
        }
        Some(_) => {}
    }
    if !state.mounted {
        actions.push(ImageAction::Mount);
    }
    (actions, note)
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
            "--size",
            &self.size.php(),
        ]
        .map(String::from)
        .to_vec();
        for path in &self.paths {
            args.extend(["--path".to_string(), path.to_string()]);
        }
        args
    }
}

/// How full an app environment's storage is, as `df` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Usage {
    pub size: u64,
    pub used: u64,
    pub inodes: u64,
    pub inodes_used: u64,
}

impl Usage {
    /// Reads `df -B1 --output=size,used,itotal,iused`'s data line.
    pub fn parse(line: &str) -> Option<Usage> {
        let numbers: Vec<u64> = line
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        match numbers[..] {
            [size, used, inodes, inodes_used] => Some(Usage {
                size,
                used,
                inodes,
                inodes_used,
            }),
            _ => None,
        }
    }
}

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = |n: u64| n as f64 / f64::from(1 << 20);
        let percent = (self.used * 100).checked_div(self.size).unwrap_or(0);
        write!(
            f,
            "{:.1} MiB of {:.1} MiB used ({percent}%), {} of {} inodes",
            mib(self.used),
            mib(self.size),
            self.inodes_used,
            self.inodes
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_is_made_once_mounted_when_not_and_never_resized_unattended() {
        let mib = |n| ByteSize::mib(n);
        let plan = |size, len, mounted| {
            let (actions, note) = image_actions(size, ImageState { len, mounted });
            let actions: Vec<String> = actions.iter().map(ToString::to_string).collect();
            (actions, note)
        };
        assert_eq!(
            plan(mib(16), None, false),
            (
                vec![
                    "create storage.img (16777216 bytes)".to_string(),
                    "make an ext4 file system in storage.img".to_string(),
                    "mount storage.img at storage/ (loop,nosuid,nodev,noexec)".to_string(),
                ],
                None
            )
        );
        assert_eq!(plan(mib(16), Some(16 << 20), true), (vec![], None));
        assert_eq!(
            plan(mib(16), Some(16 << 20), false),
            (
                vec!["mount storage.img at storage/ (loop,nosuid,nodev,noexec)".to_string()],
                None
            )
        );
        assert_eq!(
            plan(mib(32), Some(16 << 20), false),
            (
                vec!["mount storage.img at storage/ (loop,nosuid,nodev,noexec)".to_string()],
                Some("storage.img holds 16777216 bytes, not the quota 33554432: resize it by hand (docs/host-runtime.md)".to_string())
            )
        );
        assert_eq!(
            plan(mib(8), Some(16 << 20), true),
            (
                vec![],
                Some("storage.img holds 16777216 bytes, not the quota 8388608: resize it by hand (docs/host-runtime.md)".to_string())
            )
        );
        assert_eq!(
            plan(mib(8), None, true),
            (
                vec![],
                Some("storage/ is a mount point without storage.img; left as it is".to_string())
            )
        );
    }

    #[test]
    fn usage_is_read_from_df() {
        let usage = Usage::parse("  15679488  4326400     4096      14").unwrap();
        assert_eq!(
            usage.to_string(),
            "4.1 MiB of 15.0 MiB used (27%), 14 of 4096 inodes"
        );
        assert_eq!(Usage::parse("Size Used Inodes IUsed"), None);
        assert_eq!(Usage::parse("1 2 3"), None);
    }

    #[test]
    fn root_owns_the_structure_and_the_app_its_paths() {
        let request = Request {
            base_dir: "/srv/berth".parse().unwrap(),
            app: "shop".parse().unwrap(),
            env: "test".parse().unwrap(),
            size: ByteSize::mib(64),
            paths: vec![
                "data".parse().unwrap(),
                "var/sessions".parse().unwrap(),
                "var/cache/pages".parse().unwrap(),
            ],
            owner: Some(1000),
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
            "storage ensure --base-dir /srv/berth --app shop --env test --size 64M --path data --path var/sessions --path var/cache/pages"
        );
    }
}
