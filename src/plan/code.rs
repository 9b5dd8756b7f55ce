//! The size cap on released code: whether a checkout, as counted before
//! the sync, fits the app's `limits.code`. Every environment keeps several
//! releases on the host's disk, so one release may not hold more than the
//! platform allows.

use std::fmt;

use crate::config::app::CodeLimits;
use crate::config::decode::{Problem, Problems};
use crate::config::values::ByteSize;

/// What the sync would put on the host: the checkout without what rsync
/// excludes (`.git`) and without symbolic links (never synced, never
/// followed). `files` counts every inode the release takes: regular files,
/// directories (the top one included) and any other entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CodeSize {
    pub bytes: u64,
    pub files: u64,
}

impl fmt::Display for CodeSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} in {} files", size(self.bytes), self.files)
    }
}

/// A size for people: bytes, then the largest unit that keeps one decimal.
fn size(bytes: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (unit, name) in UNITS {
        if bytes >= unit {
            let tenths = bytes * 10 / unit;
            return format!("{}.{} {name} ({bytes} bytes)", tenths / 10, tenths % 10);
        }
    }
    format!("{bytes} bytes")
}

fn limit(size: ByteSize) -> String {
    format!("{} ({} bytes)", size.php(), size.bytes())
}

/// Checks a release's code against `limits.code`, both limits at once. A
/// problem names `app.yml` (the file given as `app_file`), the key and its
/// line, the figure measured, and what to change.
pub fn check(
    app_file: &str,
    limits: &CodeLimits,
    measured: &CodeSize,
    what: &str,
) -> Result<(), Problems> {
    let hint = |key: &str| {
        format!(
            "shrink the release (leave build output, dependencies' tests and media out of the tag), or raise {key} in app.yml"
        )
    };
    let mut problems = Vec::new();
    if measured.bytes > limits.size.bytes() {
        problems.push(Problem {
            file: app_file.to_string(),
            line: Some(limits.marks.size.line),
            column: Some(limits.marks.size.column),
            key: "limits.code.size".into(),
            message: format!(
                "{what} holds {} of files, more than limits.code.size {}",
                size(measured.bytes),
                limit(limits.size)
            ),
            hint: hint("limits.code.size"),
        });
    }
    if measured.files > limits.files {
        problems.push(Problem {
            file: app_file.to_string(),
            line: Some(limits.marks.files.line),
            column: Some(limits.marks.files.column),
            key: "limits.code.files".into(),
            message: format!(
                "{what} holds {} files and directories, more than limits.code.files {}",
                measured.files, limits.files
            ),
            hint: hint("limits.code.files"),
        });
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Problems(problems))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::app::AppFile;

    const APP: &str = include_str!("../../mgmt-repo-skeleton/app.yml");

    fn limits(yaml: &str) -> CodeLimits {
        assert!(
            APP.contains("  pids: 128\n"),
            "the skeleton's limits changed"
        );
        let text = APP.replacen("  pids: 128\n", &format!("  pids: 128\n{yaml}"), 1);
        AppFile::parse("app.yml", &text).unwrap().limits.code
    }

    fn lines(result: Result<(), Problems>) -> Vec<String> {
        match result {
            Ok(()) => Vec::new(),
            Err(problems) => problems.0.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn without_limits_code_a_release_may_hold_256m_in_20000_files() {
        let code = limits("");
        assert_eq!((code.size.bytes(), code.files), (256 << 20, 20_000));
        let at_limit = CodeSize {
            bytes: 256 << 20,
            files: 20_000,
        };
        assert_eq!(
            check("app.yml", &code, &at_limit, "the release").ok(),
            Some(())
        );
        let over = CodeSize {
            bytes: (256 << 20) + 1,
            files: 20_000,
        };
        // The default is not written: the problem points at `limits:`.
        assert_eq!(
            lines(check("app/app.yml", &code, &over, "the release")),
            ["app/app.yml:18:3: limits.code.size: the release holds 256.0 MiB (268435457 bytes) of files, more than limits.code.size 256M (268435456 bytes)\n  hint: shrink the release (leave build output, dependencies' tests and media out of the tag), or raise limits.code.size in app.yml"]
        );
    }

    #[test]
    fn each_limit_over_is_named_with_its_line_and_the_figure_measured() {
        let code = limits("  code: {size: 1M, files: 100}\n");
        let measured = CodeSize {
            bytes: 1_572_864,
            files: 101,
        };
        assert_eq!(
            lines(check("app.yml", &code, &measured, "checkout codes")),
            [
                "app.yml:21:16: limits.code.size: checkout codes holds 1.5 MiB (1572864 bytes) of files, more than limits.code.size 1M (1048576 bytes)\n  hint: shrink the release (leave build output, dependencies' tests and media out of the tag), or raise limits.code.size in app.yml",
                "app.yml:21:27: limits.code.files: checkout codes holds 101 files and directories, more than limits.code.files 100\n  hint: shrink the release (leave build output, dependencies' tests and media out of the tag), or raise limits.code.files in app.yml",
            ]
        );
        let files_only = CodeSize {
            bytes: 10,
            files: 101,
        };
        assert_eq!(
            lines(check("app.yml", &code, &files_only, "x")).len(),
            1,
            "only the files limit"
        );
        let within = CodeSize {
            bytes: 1 << 20,
            files: 100,
        };
        assert_eq!(check("app.yml", &code, &within, "x").ok(), Some(()));
    }

    #[test]
    fn one_limit_given_keeps_the_others_default() {
        let code = limits("  code:\n    files: 500\n");
        assert_eq!((code.size.bytes(), code.files), (256 << 20, 500));
    }

    #[test]
    fn limits_code_out_of_bounds_or_unknown_is_refused() {
        let refused = |yaml: &str| {
            let text = APP.replacen("  pids: 128\n", &format!("  pids: 128\n{yaml}"), 1);
            assert_ne!(text, APP);
            AppFile::parse("app.yml", &text)
                .unwrap_err()
                .0
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            refused("  code: {size: 8G}\n"),
            ["app.yml:21:16: limits.code.size: 8G is outside the platform's bounds\n  hint: use a size from 1M to 4G"]
        );
        assert_eq!(
            refused("  code: {files: 99}\n")[0]
                .split('\n')
                .next()
                .unwrap(),
            "app.yml:21:17: limits.code.files: files \"99\" is out of range"
        );
        assert_eq!(
            refused("  code: {inodes: 5}\n")[0]
                .split('\n')
                .next()
                .unwrap(),
            "app.yml:21:10: limits.code.inodes: unknown key \"inodes\""
        );
    }

    #[test]
    fn sizes_read_for_people() {
        assert_eq!(size(0), "0 bytes");
        assert_eq!(size(1023), "1023 bytes");
        assert_eq!(size(1536), "1.5 KiB (1536 bytes)");
        assert_eq!(size(3 << 30), "3.0 GiB (3221225472 bytes)");
        assert_eq!(
            CodeSize {
                bytes: 2048,
                files: 3
            }
            .to_string(),
            "2.0 KiB (2048 bytes) in 3 files"
        );
    }
}
