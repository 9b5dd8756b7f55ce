//! The environment variables berth reads, read once into one value. Nothing
//! else in berth calls `std::env::var`.

use std::path::PathBuf;

use crate::secret::Secret;

/// Every variable berth reads. Empty values count as unset.
#[derive(Debug, Clone, Default)]
pub struct Env {
    /// `NO_COLOR`: any value turns colour off.
    pub no_color: bool,
    /// `BERTH_INVENTORY`: path of the host inventory file.
    pub inventory: Option<PathBuf>,
    /// `BERTH_TEMPLATES_DIR`: templates that replace the embedded ones.
    pub templates_dir: Option<PathBuf>,
    /// `BERTH_SSH_KEY`: path of the private key for the hosts (a CI file
    /// variable). Only the path is held; the key never enters berth's memory.
    pub ssh_key: Option<PathBuf>,
    /// `BERTH_RIG`: the local test host's directory, for `berth demo`
    /// (default `/tmp/berth-rig`, as `tests/rig/up` uses).
    pub rig_dir: Option<PathBuf>,
    /// `BERTH_LOGS_KEY`: an app's logs-only key, for `berth logs`.
    pub logs_key: Option<LogsKey>,
    /// `SSH_ORIGINAL_COMMAND`: what a client asked, when berth runs as a
    /// forced command (`berth serve-logs`).
    pub ssh_original_command: Option<String>,
    /// `CI_API_V4_URL`: the GitLab API, e.g. `https://gitlab.example.com/api/v4`.
    pub gitlab_api: Option<String>,
    /// `BERTH_GITLAB_TOKEN`: the access token berth calls GitLab with.
    pub gitlab_token: Option<Secret>,
    /// `BERTH_CODE_USER` and `BERTH_CODE_TOKEN`: the app's deploy token
    /// (read_repository on its code repository only), for reading the code
    /// over git. Without them berth uses `BERTH_GITLAB_TOKEN`.
    pub code_user: Option<String>,
    pub code_token: Option<Secret>,
    /// `CI_JOB_TOKEN`: the running job's token, used where it suffices.
    pub job_token: Option<Secret>,
    /// `CI_PROJECT_PATH`: the management repository, e.g. `deploy/shop`.
    pub project_path: Option<String>,
    /// `CI_MERGE_REQUEST_IID`: set in merge request pipelines.
    pub merge_request_iid: Option<String>,
    /// `CI_COMMIT_SHA`: the commit the pipeline runs for.
    pub commit_sha: Option<String>,
    /// `CI_COMMIT_BEFORE_SHA`: the branch's previous tip in a push
    /// pipeline (all zeros when there is none).
    pub commit_before_sha: Option<String>,
    /// `CI_PIPELINE_URL`: recorded in release records and notes.
    pub pipeline_url: Option<String>,
    /// `CI_PIPELINE_ID`.
    pub pipeline_id: Option<String>,
    /// `BERTH_DOTENV`: where a job's outputs go, as a dotenv report.
    pub dotenv: Option<PathBuf>,
    /// `SUDO_UID`: the user who ran berth through sudo (the host's root
    /// side acts only in directories that user owns).
    pub sudo_uid: Option<u32>,
    /// `BERTH_SECRET_*`: the app's secrets (name, value; `None` when the
    /// value is not UTF-8), as set; validated by the commands that pass
    /// them on.
    pub app_secrets: Vec<(String, Option<Secret>)>,
    /// `BERTH_DNS_*`: the DNS providers' credentials, by the variable
    /// names the inventory's `dns.zones` give.
    pub dns_credentials: Vec<(String, Secret)>,
}

impl Env {
    /// The DNS credential held in `variable`, if set.
    pub fn dns_credential(&self, variable: &str) -> Option<&Secret> {
        self.dns_credentials
            .iter()
            .find(|(name, _)| name == variable)
            .map(|(_, secret)| secret)
    }

    pub fn read() -> Env {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        let text = |name: &str| var(name).map(|v| v.to_string_lossy().trim().to_string());
        Env {
            no_color: var("NO_COLOR").is_some(),
            inventory: var("BERTH_INVENTORY").map(PathBuf::from),
            templates_dir: var("BERTH_TEMPLATES_DIR").map(PathBuf::from),
            ssh_key: var("BERTH_SSH_KEY").map(PathBuf::from),
            rig_dir: var("BERTH_RIG").map(PathBuf::from),
            logs_key: var("BERTH_LOGS_KEY").map(|v| LogsKey::read(&v.to_string_lossy())),
            ssh_original_command: var("SSH_ORIGINAL_COMMAND")
                .map(|v| v.to_string_lossy().into_owned()),
            gitlab_api: text("CI_API_V4_URL"),
            gitlab_token: text("BERTH_GITLAB_TOKEN").map(Secret::new),
            code_user: text("BERTH_CODE_USER"),
            code_token: text("BERTH_CODE_TOKEN").map(Secret::new),
            job_token: text("CI_JOB_TOKEN").map(Secret::new),
            project_path: text("CI_PROJECT_PATH"),
            merge_request_iid: text("CI_MERGE_REQUEST_IID"),
            commit_sha: text("CI_COMMIT_SHA"),
            commit_before_sha: text("CI_COMMIT_BEFORE_SHA"),
            pipeline_url: text("CI_PIPELINE_URL"),
            pipeline_id: text("CI_PIPELINE_ID"),
            dotenv: var("BERTH_DOTENV").map(PathBuf::from),
            sudo_uid: text("SUDO_UID").and_then(|v| v.parse().ok()),
            app_secrets: {
                let mut secrets: Vec<(String, Option<Secret>)> = std::env::vars_os()
                    .filter_map(|(k, v)| {
                        let k = k.into_string().ok()?;
                        k.starts_with(crate::secret::APP_SECRET_PREFIX)
                            .then(|| (k, v.into_string().ok().map(Secret::new)))
                    })
                    .collect();
                secrets.sort_by(|a, b| a.0.cmp(&b.0));
                secrets
            },
            dns_credentials: std::env::vars_os()
                .filter_map(|(k, v)| {
                    let k = k.into_string().ok()?;
                    let v = v.into_string().ok().filter(|v| !v.trim().is_empty())?;
                    k.starts_with("BERTH_DNS_")
                        .then(|| (k, Secret::new(v.trim())))
                })
                .collect(),
        }
    }
}

/// `BERTH_LOGS_KEY` holds a key file's path, or the file itself in base64
/// (one maskable line, as `berth app create` stores it in a CI variable).
#[derive(Debug, Clone)]
pub enum LogsKey {
    Path(PathBuf),
    Inline(Secret),
}

impl LogsKey {
    fn read(value: &str) -> LogsKey {
        use base64::Engine;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(value.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .filter(|text| text.starts_with("-----BEGIN "));
        match decoded {
            Some(key) => LogsKey::Inline(Secret::new(key)),
            None => LogsKey::Path(PathBuf::from(value)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_logs_key_is_a_path_or_a_base64_key_file() {
        use base64::Engine;
        let file = "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n";
        let inline = base64::engine::general_purpose::STANDARD.encode(file);
        assert!(matches!(LogsKey::read(&inline), LogsKey::Inline(key) if key.expose() == file));
        assert!(
            matches!(LogsKey::read("/home/dee/.ssh/logs"), LogsKey::Path(p) if p == std::path::Path::new("/home/dee/.ssh/logs"))
        );
        assert!(matches!(LogsKey::read("key"), LogsKey::Path(_)));
    }
}
