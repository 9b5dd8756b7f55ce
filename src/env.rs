//! The environment variables berth reads, read once into one value. Nothing
//! else in berth calls `std::env::var`.

use std::path::PathBuf;

/// Every variable berth reads, with what it means.
pub const VARIABLES: &[(&str, &str)] = &[
    ("NO_COLOR", "set to any value: no colour in output"),
    ("BERTH_INVENTORY", "path of the host inventory file"),
    (
        "BERTH_TEMPLATES_DIR",
        "directory of templates that replace the embedded ones",
    ),
];

#[derive(Debug, Clone, Default)]
pub struct Env {
    pub no_color: bool,
    pub inventory: Option<PathBuf>,
    pub templates_dir: Option<PathBuf>,
}

impl Env {
    pub fn read() -> Env {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        Env {
            no_color: var("NO_COLOR").is_some(),
            inventory: var("BERTH_INVENTORY").map(PathBuf::from),
            templates_dir: var("BERTH_TEMPLATES_DIR").map(PathBuf::from),
        }
    }
}
