//! The notes example (`examples/notes`), a realistic plugin, released on
//! the rig and used the way a person uses it: sign in, upload a file, save
//! a note, mail the notes; then released again, rolled back and restarted,
//! with the data and the login still there each time. Its private files are
//! never served, its redirects keep the front's port, its storage quota
//! holds inside the app, and a release and a rollback under load, with
//! notes being written, fail no request and lose no note.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use berth::exit::ExitStatus;

use crate::app_settings::grant_storage;
use crate::common::{copy_example, free_ports};
use crate::deploy::RigApp;
use crate::egress::host_lan_address;
use crate::mail::{parts, SmtpServer};

/// One HTTP answer.
struct Response {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The text of `<span id="ID">` on a page.
    fn span(&self, id: &str) -> Option<String> {
        let text = self.text();
        let rest = text.split(&format!("<span id=\"{id}\">")).nth(1)?;
        Some(rest.split('<').next()?.to_string())
    }
}

/// A client that keeps its session cookie, talking HTTP/1.0 to the rig's
/// front with the Host a browser sends for a non-default port.
#[derive(Clone)]
struct Browser {
    port: u16,
    host: String,
    session: Option<String>,
}

impl Browser {
    fn new(app: &RigApp) -> Browser {
        let port = app.rig.front_port();
        Browser {
            port,
            host: format!("{}:{port}", app.domain),
            session: None,
        }
    }

    fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<Response> {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
        let mut request = format!("{method} {path} HTTP/1.0\r\nHost: {}\r\n", self.host);
        if let Some(session) = &self.session {
            request.push_str(&format!("Cookie: PHPSESSID={session}\r\n"));
        }
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        if !body.is_empty() {
            request.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        request.push_str("\r\n");
        let mut bytes = request.into_bytes();
        bytes.extend_from_slice(body);
        stream.write_all(&bytes)?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response)?;
        let split = response
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| std::io::Error::other("no end of headers"))?;
        let head = String::from_utf8_lossy(&response[..split]).into_owned();
        // The status line's reason phrase may be missing (nginx sends none
        // for a status it has no name for, such as 507).
        let status = head
            .lines()
            .next()
            .and_then(|line| line.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("not HTTP: {head:?}")))?;
        let response = Response {
            status,
            head,
            body: response[split + 4..].to_vec(),
        };
        if let Some(cookie) = response.header("Set-Cookie") {
            if let Some(id) = cookie.strip_prefix("PHPSESSID=") {
                self.session = Some(id.split(';').next().unwrap_or("").to_string());
            }
        }
        Ok(response)
    }

    fn get(&mut self, path: &str) -> Response {
        self.send("GET", path, &[], b"")
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Response {
        self.try_post(path, fields)
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    fn try_post(&mut self, path: &str, fields: &[(&str, &str)]) -> std::io::Result<Response> {
        let body: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("{}={}", url_encode(k), url_encode(v)))
            .collect();
        self.send(
            "POST",
            path,
            &[("Content-Type", "application/x-www-form-urlencoded")],
            body.join("&").as_bytes(),
        )
    }

    /// A file form's upload, as a browser sends it.
    fn upload(&mut self, name: &str, content: &[u8]) -> Response {
        let boundary = "----berthnotesboundary7MA4YWxk";
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(content);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let content_type = format!("multipart/form-data; boundary={boundary}");
        self.send("POST", "/upload", &[("Content-Type", &content_type)], &body)
            .unwrap_or_else(|e| panic!("upload {name}: {e}"))
    }

    fn sign_in(&mut self, user: &str, password: &str) -> Response {
        self.post("/login", &[("user", user), ("password", password)])
    }
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A copy of `examples/notes` whose markers say `version`.
fn notes_code(app: &RigApp, version: &str) -> PathBuf {
    let code = app.scratch(&format!("notes-{version}"));
    copy_example("notes", &code, version);
    code
}

const REPORT: &[u8] = b"quarterly numbers: 42\n";

/// What alice saved is all there, and she is still signed in, on `version`.
fn assert_alice_has_her_data(alice: &mut Browser, when: &str, version: &str, notes: &[&str]) {
    let page = alice.get("/");
    let text = page.text();
    assert_eq!(page.status, 200, "{when}: {text}");
    assert_eq!(
        (page.span("version"), page.span("marker")),
        (Some(version.to_string()), Some(version.to_string())),
        "{when}"
    );
    assert!(
        text.contains("<p id=\"user\">signed in as alice</p>"),
        "{when}: signed out: {text}"
    );
    let listed: String = notes.iter().map(|n| format!("<li>{n}</li>")).collect();
    assert!(
        text.contains(&format!("<ul class=\"notes\">{listed}</ul>")),
        "{when}: notes: {text}"
    );
    assert!(
        text.contains("<li><a href=\"/files/report.txt\">report.txt</a></li>"),
        "{when}: files: {text}"
    );
    let file = alice.get("/files/report.txt");
    assert_eq!((file.status, file.body.as_slice()), (200, REPORT), "{when}");
}

#[test]
#[ignore = "rig: sshd, Docker, the front nginx (tests/rig/up) and an SMTP server (python3-aiosmtpd); scripts/test runs it"]
fn the_notes_example_keeps_data_and_logins_through_releases_and_keeps_private_files_private() {
    let relay = format!("{}:{}", host_lan_address(), free_ports::<1>()[0]);
    let maildir = tempfile::tempdir().unwrap();
    let smtp = SmtpServer::start(&relay, &maildir.path().join("relay"));

    let app = RigApp::new("notes");
    app.edit_app_yml("docroot: public", "docroot: .");
    app.edit_app_yml("health_path: /health.php", "health_path: /health");
    let _storage = grant_storage(&app, "16M");
    app.append_app_yml("mail:\n  from: notes@apps.example.com\n  per_minute: 10\n");
    app.edit_inventory(
        "    root_berth:",
        &format!("    mail: {{relay: \"{relay}\"}}\n    root_berth:"),
    );
    let [v1, v2, v3] = ["v1.0.0", "v2.0.0", "v3.0.0"].map(|v| notes_code(&app, v));
    app.deploy("v1.0.0", &v1).expect(ExitStatus::Success);

    // Sign in: a wrong password is refused; the redirect after a good one
    // names the host and the front's port the browser used.
    let mut alice = Browser::new(&app);
    assert_eq!(alice.get("/").status, 200);
    assert_eq!(alice.sign_in("alice", "guess").status, 403);
    let signed_in = alice.sign_in("alice", "wonderland");
    let home = format!("http://{}/", alice.host);
    assert_eq!(
        (signed_in.status, signed_in.header("Location")),
        (303, Some(home.as_str()))
    );

    // An upload into storage and a note, each answered with a redirect home.
    let uploaded = alice.upload("report.txt", REPORT);
    assert_eq!(
        (uploaded.status, uploaded.header("Location")),
        (303, Some(home.as_str())),
        "{}",
        uploaded.text()
    );
    let saved = alice.post("/notes", &[("text", "remember the milk")]);
    assert_eq!(saved.status, 303, "{}", saved.text());
    assert_alice_has_her_data(&mut alice, "after saving", "v1.0.0", &["remember the milk"]);

    // Private: config, code, scripts, storage and vendor metadata are never
    // served, to anyone; dotfiles are refused; alice's file needs her login.
    let mut stranger = Browser::new(&app);
    for (path, status) in [
        ("/config/users.php", 404),
        ("/config/", 404),
        ("/lib/app.php", 404),
        ("/bin/import.php", 404),
        ("/data/uploads/alice/report.txt", 404),
        ("/data/notes-alice.txt", 404),
        ("/sessions/", 404),
        ("/composer.json", 404),
        ("/data/.gitkeep", 404),
        ("/.gitkeep", 403),
        ("/files/report.txt", 403),
    ] {
        for (who, browser) in [("a stranger", &mut stranger), ("alice", &mut alice)] {
            if who == "alice" && path == "/files/report.txt" {
                continue;
            }
            let got = browser.get(path);
            assert_eq!(got.status, status, "{path} for {who}: {}", got.text());
            assert!(
                !got.text().contains("$2y$") && !got.text().contains("<?php"),
                "{path} for {who} leaked: {}",
                got.text()
            );
        }
    }

    // The stylesheet is a static file with a day's cache lifetime, gzipped
    // for a client that accepts it.
    let css = stranger
        .send(
            "GET",
            "/assets/style.css",
            &[("Accept-Encoding", "gzip")],
            b"",
        )
        .unwrap();
    assert_eq!(
        (
            css.status,
            css.header("Cache-Control"),
            css.header("Content-Encoding")
        ),
        (200, Some("max-age=86400"), Some("gzip"))
    );
    assert_eq!(&css.body[..2], &[0x1f, 0x8b], "a gzip stream");

    // Mail: alice's notes reach the SMTP server, from the app's sender.
    let mailed = alice.post("/mail", &[]);
    if mailed.status != 200 {
        let logs = app
            .berth(&["logs", "--source", "php", "--tail", "20"])
            .run();
        panic!("mail: {}\nphp's logs:\n{}", mailed.text(), logs.stdout());
    }
    let messages: Vec<_> = smtp.messages().iter().map(|m| parts(m)).collect();
    assert_eq!(
        messages,
        [(
            vec![
                "From: notes@apps.example.com".to_string(),
                "To: alice@example.org".to_string(),
                "Subject: Your notes".to_string(),
                "X-MailFrom: notes@apps.example.com".to_string(),
                "X-RcptTo: alice@example.org".to_string(),
            ],
            // The page's body ends in a newline; the mailbox adds one.
            "Your notes:\n\nremember the milk\n\n".to_string()
        )]
    );

    // A new release, a rollback and a restart: the data and the login stay.
    app.deploy("v2.0.0", &v2).expect(ExitStatus::Success);
    assert_alice_has_her_data(
        &mut alice,
        "after a release",
        "v2.0.0",
        &["remember the milk"],
    );
    app.berth(&["rollback", "--health-timeout", "20"])
        .run()
        .expect(ExitStatus::Success);
    assert_alice_has_her_data(
        &mut alice,
        "after a rollback",
        "v1.0.0",
        &["remember the milk"],
    );
    app.berth(&["restart", "--health-timeout", "20"])
        .run()
        .expect(ExitStatus::Success);
    assert_alice_has_her_data(
        &mut alice,
        "after a restart",
        "v1.0.0",
        &["remember the milk"],
    );

    // The quota holds inside the app: uploads of 1.5 MiB succeed until the
    // 16M file system is full, then the app answers 507 and keeps no part
    // of the refused file; every kept file is whole; it still serves.
    let big = vec![b'x'; 3 << 19];
    let mut kept = Vec::new();
    let refused = loop {
        let name = format!("big-{}.bin", kept.len());
        let answer = alice.upload(&name, &big);
        match answer.status {
            303 => kept.push(name),
            507 => break name,
            other => panic!("upload {name}: {other}: {}", answer.text()),
        }
        assert!(
            kept.len() < 12,
            "16M of storage took {} uploads of 1.5 MiB",
            kept.len()
        );
    };
    assert!(kept.len() >= 4, "only {} uploads fit in 16M", kept.len());
    let page = alice.get("/").text();
    assert!(
        !page.contains(&refused),
        "the refused upload is listed: {page}"
    );
    for name in &kept {
        let file = alice.get(&format!("/files/{name}"));
        assert_eq!((file.status, file.body.len()), (200, big.len()), "{name}");
    }
    for name in &kept {
        assert_eq!(alice.post("/delete", &[("name", name)]).status, 303);
    }

    // Under load, with storage in use: readers signed in with sessions of
    // their own and a writer saving notes, through a release, a rollback
    // and the release again. No request fails, no page is torn, no reader
    // is signed out, and every note the app acknowledged is there.
    let load = NotesLoad::start(&app, 3);
    app.deploy("v3.0.0", &v3).expect(ExitStatus::Success);
    app.berth(&["rollback", "--health-timeout", "20"])
        .run()
        .expect(ExitStatus::Success);
    app.deploy("v3.0.0", &v3).expect(ExitStatus::Success);
    let outcome = load.finish();
    eprintln!(
        "notes load: {} pages, {} notes saved, {} retried connections",
        outcome.pages,
        outcome.saved.len(),
        outcome.retries
    );
    assert!(outcome.pages > 100, "the load ran: {outcome:?}");
    assert!(outcome.saved.len() > 10, "notes were written: {outcome:?}");
    assert_eq!(
        (outcome.failed, outcome.torn, outcome.signed_out),
        (0, 0, 0),
        "failed requests, torn pages, readers signed out"
    );
    let mut expected = vec!["remember the milk".to_string()];
    expected.extend(outcome.saved);
    let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
    assert_alice_has_her_data(&mut alice, "after the load", "v3.0.0", &expected);
}

/// What a load run saw.
#[derive(Debug)]
struct LoadOutcome {
    pages: usize,
    failed: usize,
    torn: usize,
    signed_out: usize,
    retries: usize,
    /// The notes the app acknowledged (303), in order.
    saved: Vec<String>,
}

/// Readers signed in as alice, each with a session of its own, and one
/// writer saving numbered notes, until `finish`.
struct NotesLoad {
    stop: Arc<AtomicBool>,
    counts: Arc<[AtomicUsize; 5]>,
    saved: Arc<Mutex<Vec<String>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

const PAGES: usize = 0;
const FAILED: usize = 1;
const TORN: usize = 2;
const SIGNED_OUT: usize = 3;
const RETRIES: usize = 4;

impl NotesLoad {
    fn start(app: &RigApp, readers: usize) -> NotesLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let counts: Arc<[AtomicUsize; 5]> = Arc::new(std::array::from_fn(|_| AtomicUsize::new(0)));
        let saved = Arc::new(Mutex::new(Vec::new()));
        let mut threads = Vec::new();
        for _ in 0..readers {
            let mut reader = Browser::new(app);
            assert_eq!(reader.sign_in("alice", "wonderland").status, 303);
            let (stop, counts) = (stop.clone(), counts.clone());
            threads.push(std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    // A browser retries a request whose connection the
                    // server closed; one retry, counted.
                    let answer = reader.send("GET", "/", &[], b"").or_else(|_| {
                        counts[RETRIES].fetch_add(1, Ordering::Relaxed);
                        reader.send("GET", "/", &[], b"")
                    });
                    let Ok(page) = answer.map_err(|e| eprintln!("reader: {e}")) else {
                        counts[FAILED].fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    counts[PAGES].fetch_add(1, Ordering::Relaxed);
                    let version = page.span("version");
                    if page.status != 200 {
                        if counts[FAILED].fetch_add(1, Ordering::Relaxed) == 0 {
                            eprintln!("first failed page: {} {}", page.status, page.text());
                        }
                    } else if version.is_none() || version != page.span("marker") {
                        if counts[TORN].fetch_add(1, Ordering::Relaxed) == 0 {
                            eprintln!("first torn page: {}", page.text());
                        }
                    } else if !page.text().contains("signed in as alice") {
                        counts[SIGNED_OUT].fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        let mut writer = Browser::new(app);
        assert_eq!(writer.sign_in("alice", "wonderland").status, 303);
        let (stop_w, counts_w, saved_w) = (stop.clone(), counts.clone(), saved.clone());
        threads.push(std::thread::spawn(move || {
            let mut n = 0;
            while !stop_w.load(Ordering::Relaxed) {
                n += 1;
                let note = format!("load note {n}");
                let answer = writer.try_post("/notes", &[("text", &note)]);
                match answer {
                    Ok(r) if r.status == 303 => saved_w.lock().unwrap().push(note),
                    Ok(r) => {
                        eprintln!("note {n}: {} {}", r.status, r.text());
                        counts_w[FAILED].fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        eprintln!("note {n}: {e}");
                        counts_w[FAILED].fetch_add(1, Ordering::Relaxed);
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }));
        NotesLoad {
            stop,
            counts,
            saved,
            threads,
        }
    }

    fn finish(self) -> LoadOutcome {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        let count = |i: usize| self.counts[i].load(Ordering::Relaxed);
        let saved = std::mem::take(&mut *self.saved.lock().unwrap());
        LoadOutcome {
            pages: count(PAGES),
            failed: count(FAILED),
            torn: count(TORN),
            signed_out: count(SIGNED_OUT),
            retries: count(RETRIES),
            saved,
        }
    }
}

#[test]
#[ignore = "rig: sshd, Docker, the front nginx and rsync (tests/rig/up); scripts/test runs it"]
fn an_upload_as_large_as_post_max_size_reaches_php() {
    // Both containers buffer a request body in their /tmp (a tmpfs): the
    // app's nginx before it passes the body on, PHP before the script runs.
    let app = RigApp::new("big-upload");
    app.edit_app_yml(
        "  upload_max_filesize: 8M\n",
        "  upload_max_filesize: 40M\n",
    );
    app.edit_app_yml("  post_max_size: 8M\n", "  post_max_size: 41M\n");
    let code = app.code("v1.0.0", true);
    std::fs::write(
        code.join("public/upload.php"),
        "<?php\n$f = $_FILES['file'] ?? null;\necho $f && $f['error'] === UPLOAD_ERR_OK ? 'received ' . filesize($f['tmp_name']) : 'error ' . ($f['error'] ?? 'none'), \"\\n\";\n",
    )
    .unwrap();
    app.deploy("v1.0.0", &code).expect(ExitStatus::Success);
    let mut browser = Browser::new(&app);
    let size = 40 << 20;
    let boundary = "----berthbigupload";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.resize(body.len() + size, b'x');
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let answer = browser
        .send(
            "POST",
            "/upload.php",
            &[(
                "Content-Type",
                &format!("multipart/form-data; boundary={boundary}"),
            )],
            &body,
        )
        .unwrap();
    assert_eq!(
        (answer.status, answer.text()),
        (200, format!("received {size}\n"))
    );
}
