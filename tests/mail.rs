//! Outbound mail, proven on the rig against a real SMTP server (aiosmtpd,
//! Debian's python3-aiosmtpd) on the host's LAN address: a plugin page
//! calls `mail()`, and what reaches the server carries the app's sender
//! whatever the plugin asked for; an app without `mail` cannot send or
//! even reach the relay; the relay's port is open only through the egress
//! policy (another port on the same address is refused), and only at the
//! app's rate.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth::exit::ExitStatus;

use crate::common::{free_ports, http_request};
use crate::deploy::RigApp;
use crate::egress::{host_lan_address, EHOSTUNREACH, PROBE};

/// Sends one message, or says that `mail()` is missing; `forge` asks for
/// another sender every way a plugin can (a From: header, `-f`).
const MAIL_PAGE: &str = r#"<?php
header('Content-Type: application/json');
if (!function_exists('mail')) {
    try {
        mail($_GET['to'], 's', 'b');
    } catch (Error $e) {
        echo json_encode(['missing' => $e->getMessage()]);
        exit;
    }
}
$forge = isset($_GET['forge']);
$sent = mail(
    $_GET['to'],
    $_GET['subject'],
    $_GET['body'],
    $forge ? "From: CEO <ceo@bank.example>" : '',
    $forge ? '-fceo@bank.example' : ''
);
echo json_encode(['sent' => $sent]);
"#;

/// aiosmtpd listening on `address`, storing what it accepts in a maildir;
/// its `Message` handler records the envelope as `X-MailFrom` and
/// `X-RcptTo` headers.
pub(crate) struct SmtpServer {
    child: Child,
    maildir: PathBuf,
}

impl SmtpServer {
    pub(crate) fn start(address: &str, maildir: &Path) -> SmtpServer {
        let child = Command::new("/usr/bin/python3")
            .args(["-m", "aiosmtpd", "-n", "-l", address])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir)
            .stdout(Stdio::null())
            .spawn()
            .expect("python3-aiosmtpd is installed (scripts/install-deps)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(address).is_err() {
            assert!(
                Instant::now() < deadline,
                "aiosmtpd on {address} not listening after 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        SmtpServer {
            child,
            maildir: maildir.to_path_buf(),
        }
    }

    /// The messages received, oldest first.
    pub(crate) fn messages(&self) -> Vec<String> {
        let mut files: Vec<(std::time::SystemTime, PathBuf)> =
            std::fs::read_dir(self.maildir.join("new"))
                .map(|dir| {
                    dir.map(|e| {
                        let e = e.unwrap();
                        (e.metadata().unwrap().modified().unwrap(), e.path())
                    })
                    .collect()
                })
                .unwrap_or_default();
        files.sort();
        files
            .into_iter()
            .map(|(_, path)| std::fs::read_to_string(path).unwrap())
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A message's headers, in order, minus those that differ by run (`Date`,
/// `Message-ID`, and the `X-Peer` the server adds, which names the
/// connection's source port), and its body.
pub(crate) fn parts(message: &str) -> (Vec<String>, String) {
    let (head, body) = message.split_once("\n\n").unwrap();
    let headers = head
        .lines()
        .filter(|h| {
            !["X-Peer:", "Date:", "Message-ID:"]
                .iter()
                .any(|p| h.starts_with(p))
        })
        .map(str::to_string)
        .collect();
    (headers, body.to_string())
}

fn get(app: &RigApp, path: &str) -> serde_json::Value {
    let (status, body) = http_request(app.rig.front_port(), &app.domain, "GET", path, "").unwrap();
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

#[test]
#[ignore = "rig: sshd, Docker, the front nginx (tests/rig/up) and an SMTP server (python3-aiosmtpd); scripts/test runs it"]
fn mail_goes_through_the_relay_with_the_apps_sender_at_the_apps_rate() {
    let lan = host_lan_address();
    let [port, other_port] = free_ports::<2>();
    let relay = format!("{lan}:{port}");
    let other = format!("{lan}:{other_port}");
    let dir = tempfile::tempdir().unwrap();
    let server = SmtpServer::start(&relay, &dir.path().join("relay"));
    let other_server = SmtpServer::start(&other, &dir.path().join("other"));

    let sender = RigApp::new("mail-sender");
    sender.append_app_yml("mail:\n  from: noreply@shop.example.com\n  per_minute: 3\n");
    let silent = RigApp::new("mail-silent");
    for app in [&sender, &silent] {
        app.edit_inventory(
            "    root_berth:",
            &format!("    mail: {{relay: \"{relay}\"}}\n    root_berth:"),
        );
        let code = app.code("v1.0.0", true);
        std::fs::write(code.join("public/mail.php"), MAIL_PAGE).unwrap();
        std::fs::write(code.join("public/probe.php"), PROBE).unwrap();
        app.deploy("v1.0.0", &code).expect(ExitStatus::Success);
    }

    // Connection 1: the plugin asks for another sender, both ways.
    assert_eq!(
        get(
            &sender,
            "/mail.php?to=user@customer.example&subject=Welcome&body=Hello%20there&forge=1"
        ),
        serde_json::json!({"sent": true})
    );
    // Connection 2.
    assert_eq!(
        get(
            &sender,
            "/mail.php?to=other@customer.example&subject=Reset&body=Your%20code"
        ),
        serde_json::json!({"sent": true})
    );
    // Connection 3: the relay is reachable, another port on its address
    // is not: the policy opens exactly the relay.
    assert_eq!(
        get(&sender, &format!("/probe.php?targets={relay},{other}")),
        serde_json::json!({relay.clone(): 0, other.clone(): EHOSTUNREACH})
    );
    // Connection 4, over the rate of 3 a minute: refused by the host's
    // firewall, so nothing arrives.
    let over = get(
        &sender,
        "/mail.php?to=third@customer.example&subject=Spam&body=x",
    );

    let messages = server.messages();
    let got: Vec<(Vec<String>, String)> = messages.iter().map(|m| parts(m)).collect();
    assert_eq!(
        got,
        [
            (
                vec![
                    "From: noreply@shop.example.com".to_string(),
                    "To: user@customer.example".to_string(),
                    "Subject: Welcome".to_string(),
                    "X-MailFrom: noreply@shop.example.com".to_string(),
                    "X-RcptTo: user@customer.example".to_string(),
                ],
                "Hello there\n".to_string()
            ),
            (
                vec![
                    "From: noreply@shop.example.com".to_string(),
                    "To: other@customer.example".to_string(),
                    "Subject: Reset".to_string(),
                    "X-MailFrom: noreply@shop.example.com".to_string(),
                    "X-RcptTo: other@customer.example".to_string(),
                ],
                "Your code\n".to_string()
            ),
        ],
        "messages at the relay: {messages:#?}; the 4th mail() answered {over}"
    );
    assert_eq!(over, serde_json::json!({"sent": false}));

    // An app without `mail`: no mail(), and no way to the relay either.
    assert_eq!(
        get(&silent, "/mail.php?to=user@customer.example"),
        serde_json::json!({"missing": "Call to undefined function mail()"})
    );
    assert_eq!(
        get(&silent, &format!("/probe.php?targets={relay}")),
        serde_json::json!({relay.clone(): EHOSTUNREACH})
    );
    assert_eq!(server.messages().len(), 2);
    assert_eq!(other_server.messages(), Vec::<String>::new());
}

#[test]
fn validate_refuses_mail_on_a_host_without_a_relay() {
    let dir = crate::common::app_dir(
        crate::common::RELEASE_YML,
        &format!(
            "{}mail: {{from: noreply@shop.example.com}}\n",
            crate::common::APP_YML
        ),
    );
    let run = crate::common::Berth::new()
        .args(["validate", "--app-dir"])
        .arg_path(dir.path())
        .args(["--inventory"])
        .arg_path(&crate::common::repo_root().join("examples/inventory.yml"))
        .run()
        .expect(ExitStatus::InvalidInput);
    let app_yml = dir.path().join("app.yml").display().to_string();
    assert_eq!(
        run.stderr(),
        format!(
            "error: 2 problems in the configuration:\n\
             {app_yml}:27:8: mail: environment test runs on host local, which has no mail relay\n  \
             hint: name the relay in the host inventory (hosts.local.mail.relay), or remove mail from app.yml\n\
             {app_yml}:27:8: mail: environment production runs on host local, which has no mail relay\n  \
             hint: name the relay in the host inventory (hosts.local.mail.relay), or remove mail from app.yml\n"
        )
    );
}
