//! Inputs the plan's unit tests share: the skeleton's app and a
//! production-like host running it (with a mail relay, which apps without
//! `mail` ignore).

pub const APP: &str = include_str!("../../mgmt-repo-skeleton/app.yml");

pub const INVENTORY: &str = "hosts:
  local:
    ssh: {address: 127.0.0.1, user: deploy, known_hosts: \"[127.0.0.1]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBEexampleexampleexampleexampleexamplexx\"}
    publish_address: 127.0.0.1
    base_dir: /srv/berth
    environments: [test, production]
    front:
      include_dir: /etc/nginx/berth.d
      log_dir: /var/log/nginx/berth
      listen: 0.0.0.0:80
      test_command: [/usr/sbin/nginx, -t]
      reload_command: [/usr/sbin/nginx, -s, reload]
    mail: {relay: \"10.0.0.25:2525\"}
    root_berth: [/usr/bin/sudo, -n, /usr/local/bin/berth]
";
