//! The local test host that `tests/rig/up` starts, as `berth demo` and the
//! test suite use it: its settings (`rig.env`) and an inventory for it.

use std::path::Path;

use anyhow::{bail, Context};

/// `rig.env`: the `KEY=value` lines tests/rig/up writes.
pub struct RigEnv {
    vars: Vec<(String, String)>,
}

impl RigEnv {
    pub fn read(path: &Path) -> anyhow::Result<RigEnv> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
        let vars = text
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
            .collect();
        Ok(RigEnv { vars })
    }

    pub fn get(&self, key: &str) -> anyhow::Result<&str> {
        match self.vars.iter().find(|(k, _)| k == key) {
            Some((_, v)) => Ok(v),
            None => bail!("rig.env has no {key}"),
        }
    }

    /// A host inventory for the rig; its values are validated when berth
    /// loads it, like any inventory.
    pub fn inventory(&self) -> anyhow::Result<String> {
        let front = self.get("RIG_FRONT_PREFIX")?;
        let conf = self.get("RIG_FRONT_CONF")?;
        Ok(format!(
            "hosts:
  local:
    ssh: {{address: 127.0.0.1, port: {port}, user: deploy, known_hosts: \"{known}\"}}
    publish_address: 127.0.0.1
    base_dir: {base}
    environments: [test, production]
    front:
      include_dir: {confd}
      log_dir: {front}/logs
      listen: {listen}
      test_command: [/usr/sbin/nginx, -p, {front}, -c, {conf}, -t]
      reload_command: [/usr/sbin/nginx, -p, {front}, -c, {conf}, -s, reload]
      pid_file: {front}/nginx.pid
    root_berth: [/usr/bin/sudo, -n, {host_berth}]
    docker:
      command: [{docker}]
      compose_command: [{compose}]
",
            port = self.get("RIG_SSH_PORT")?,
            known = self.get("RIG_KNOWN_HOSTS_LINE")?,
            base = self.get("RIG_BASE_DIR")?,
            confd = self.get("RIG_FRONT_CONF_D")?,
            listen = self.get("RIG_FRONT_LISTEN")?,
            host_berth = self.get("RIG_HOST_BERTH")?,
            docker = self.program("RIG_DOCKER_CMD")?.join(", "),
            compose = self.program("RIG_COMPOSE_CMD")?.join(", "),
        ))
    }

    /// A command of the rig host's, as words: `tests/rig/up` writes its
    /// program as an absolute path (`/usr/bin/docker compose`).
    fn program(&self, key: &str) -> anyhow::Result<Vec<&str>> {
        let words: Vec<&str> = self.get(key)?.split_whitespace().collect();
        match words.first() {
            Some(program) if program.starts_with('/') => Ok(words),
            _ => bail!("rig.env's {key} is not an absolute path: run tests/rig/up again"),
        }
    }

    /// Installs `exe` as the rig host's root-owned berth, the one its
    /// deploy user may run as root (`egress apply`, tests/rig/up's sudoers
    /// entry). Replaced atomically, and only when it differs, so a deploy
    /// running it meanwhile is not disturbed. Must run as root.
    pub fn install_host_berth(&self, exe: &Path) -> anyhow::Result<()> {
        let target = Path::new(self.get("RIG_HOST_BERTH")?);
        let new = std::fs::read(exe).with_context(|| format!("read {}", exe.display()))?;
        if std::fs::read(target).ok().as_deref() == Some(new.as_slice()) {
            return Ok(());
        }
        let staged = target.with_extension(format!("new-{}", std::process::id()));
        std::fs::write(&staged, &new).with_context(|| format!("write {}", staged.display()))?;
        std::fs::set_permissions(&staged, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
        std::fs::rename(&staged, target)
            .with_context(|| format!("install {}", target.display()))?;
        Ok(())
    }
}
