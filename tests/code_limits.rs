//! The size cap on released code (`limits.code` in app.yml) on the rig: a
//! release over it is refused before anything reaches the host.

use std::path::Path;

use berth::exit::ExitStatus;

use crate::deploy::RigApp;

/// Bytes and entries rsync copies from `dir`: everything but `.git` and
/// symbolic links, the top directory included. Counted here on its own,
/// not with berth's counter.
fn counted(dir: &Path) -> (u64, u64) {
    let meta = std::fs::symlink_metadata(dir).unwrap();
    if meta.file_type().is_symlink() {
        return (0, 0);
    }
    if !meta.is_dir() {
        return (meta.len(), 1);
    }
    let mut total = (0, 1);
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() == ".git" {
            continue;
        }
        let (bytes, files) = counted(&entry.path());
        total = (total.0 + bytes, total.1 + files);
    }
    total
}

fn host_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
#[ignore = "rig: sshd, Docker, the front nginx and rsync (tests/rig/up); scripts/test runs it"]
fn a_release_over_its_code_limits_is_refused_and_the_previous_one_keeps_serving() {
    let app = RigApp::new("codecap");
    app.deploy("v1.0.0", &app.code("v1.0.0", true))
        .expect(ExitStatus::Success);
    let (status, version, _) = app.served();
    assert_eq!((status, version.as_str()), (200, "v1.0.0"));
    let root = Path::new(app.rig.get("RIG_BASE_DIR"))
        .join(&app.id)
        .join("test");
    let state = std::fs::read_to_string(root.join("state.json")).unwrap();
    let releases = host_entries(&root.join("releases"));
    assert_eq!(releases, ["v1.0.0"]);

    // v1.0.0 fitted the defaults; v2.0.0 brings 2 MiB of media and a
    // directory of 150 small files, and app.yml now allows 1M in 100.
    app.edit_app_yml(
        "  pids: 128\n",
        "  pids: 128\n  code: {size: 1M, files: 100}\n",
    );
    let code = app.code("v2.0.0", true);
    std::fs::write(code.join("public/video.bin"), vec![b'v'; 2 << 20]).unwrap();
    std::fs::create_dir_all(code.join("public/icons")).unwrap();
    for i in 0..150 {
        std::fs::write(code.join(format!("public/icons/{i}.svg")), "<svg/>").unwrap();
    }
    // Not counted: what the sync leaves out.
    std::fs::create_dir_all(code.join(".git")).unwrap();
    std::fs::write(code.join(".git/pack"), vec![0u8; 3 << 20]).unwrap();
    std::os::unix::fs::symlink("/usr", code.join("public/usr")).unwrap();
    let (bytes, files) = counted(&code);
    assert!(
        bytes > 2 << 20 && bytes < 3 << 20 && files > 150,
        "{bytes} {files}"
    );

    let app_yml = format!("{}", app.app_yml_path().display());
    let tenths = bytes * 10 / (1 << 20);
    let expected = format!(
        "error: 2 problems in the configuration:\n\
         {app_yml}:21:16: limits.code.size: the code checkout {code} holds {}.{} MiB ({bytes} bytes) of files, more than limits.code.size 1M (1048576 bytes)\n  \
         hint: shrink the release (leave build output, dependencies' tests and media out of the tag), or raise limits.code.size in app.yml\n\
         {app_yml}:21:27: limits.code.files: the code checkout {code} holds {files} files and directories, more than limits.code.files 100\n  \
         hint: shrink the release (leave build output, dependencies' tests and media out of the tag), or raise limits.code.files in app.yml\n",
        tenths / 10,
        tenths % 10,
        code = code.display(),
    );
    // The plan is refused as the deploy is.
    app.request("v2.0.0");
    let dry = app
        .berth(&["--dry-run", "deploy"])
        .args(["--code"])
        .arg_path(&code)
        .run()
        .expect(ExitStatus::InvalidInput);
    assert_eq!(dry.stderr(), expected);
    let run = app.deploy("v2.0.0", &code).expect(ExitStatus::InvalidInput);
    assert_eq!(run.stderr(), expected);
    assert_eq!(run.stdout(), "");

    // Nothing changed on the host: no staging directory, the same state;
    // v1.0.0 still serves.
    assert_eq!(host_entries(&root.join("releases")), releases);
    assert_eq!(
        std::fs::read_to_string(root.join("state.json")).unwrap(),
        state
    );
    let (status, version, _) = app.served();
    assert_eq!((status, version.as_str()), (200, "v1.0.0"));

    // Within the limits again (the media and icons gone), it deploys.
    std::fs::remove_file(code.join("public/video.bin")).unwrap();
    std::fs::remove_dir_all(code.join("public/icons")).unwrap();
    app.deploy("v2.0.0", &code).expect(ExitStatus::Success);
    let (status, version, _) = app.served();
    assert_eq!((status, version.as_str()), (200, "v2.0.0"));
}
