//! `berth dns` against the rig's real DNS servers: PowerDNS 4.7 on
//! sqlite through its HTTP API, and BIND 9.18 through RFC 2136 updates
//! signed with TSIG. Every effect is checked with `dig` against the server
//! itself; each test has zones of its own (a PowerDNS zone it creates, one
//! of the rig's BIND zones by number).

use std::path::Path;
use std::process::Command;

use berth::exit::ExitStatus;

use crate::common::{free_port, Berth, Run};
use crate::deploy::Rig;

const V4: &str = "203.0.113.10";
const V6: &str = "2001:db8::10";

fn run(argv: &[&str], input: Option<&str>) -> String {
    use std::io::Write;
    let mut child = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.unwrap_or("").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{argv:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The rig's two servers and the zones one test uses.
struct Zones {
    rig: Rig,
    /// A PowerDNS zone made for this test, deleted at the end.
    pdns: String,
    /// One of the rig's BIND zones, emptied first.
    bind: String,
    dir: tempfile::TempDir,
}

impl Zones {
    fn new(test: &str, bind_index: usize) -> Zones {
        let rig = Rig::load();
        let pdns = format!("{test}-{}.pdns.test", std::process::id());
        let bind = rig
            .get("RIG_BIND_ZONES")
            .split_whitespace()
            .nth(bind_index)
            .expect("the rig has 12 BIND zones")
            .to_string();
        let zones = Zones {
            rig,
            pdns,
            bind,
            dir: tempfile::tempdir().unwrap(),
        };
        zones.pdns_api("DELETE", &format!("/{}.", zones.pdns), None);
        let (status, body) = zones.pdns_api(
            "POST",
            "",
            Some(&format!(
                r#"{{"name":"{0}.","kind":"Native","nameservers":["ns1.{0}."]}}"#,
                zones.pdns
            )),
        );
        assert_eq!(status, "201", "{body}");
        zones.empty_bind_zone();
        zones
    }

    fn pdns_api(&self, method: &str, path: &str, body: Option<&str>) -> (String, String) {
        let url = format!(
            "{}/api/v1/servers/localhost/zones{path}",
            self.rig.get("RIG_PDNS_API")
        );
        let key = format!("X-API-Key: {}", self.rig.get("RIG_PDNS_API_KEY"));
        let mut argv = vec![
            "curl",
            "-s",
            "-H",
            &key,
            "-X",
            method,
            "-w",
            "\n%{http_code}",
        ];
        if let Some(body) = body {
            argv.extend(["-H", "Content-Type: application/json", "-d", body]);
        }
        argv.push(&url);
        let out = run(&argv, None);
        let (body, status) = out.rsplit_once('\n').unwrap();
        (status.to_string(), body.to_string())
    }

    fn tsig(&self) -> String {
        format!(
            "hmac-sha256:{}:{}",
            self.rig.get("RIG_TSIG_KEY_NAME"),
            self.rig.get("RIG_TSIG_SECRET")
        )
    }

    fn bind_port(&self) -> &str {
        self.rig.get("RIG_BIND_DNS").rsplit(':').next().unwrap()
    }

    fn pdns_port(&self) -> &str {
        self.rig.get("RIG_PDNS_DNS").rsplit(':').next().unwrap()
    }

    /// Deletes every name of the BIND zone but its apex and `ns1`.
    fn empty_bind_zone(&self) {
        let axfr = run(
            &[
                "dig",
                "-y",
                &self.tsig(),
                "@127.0.0.1",
                "-p",
                self.bind_port(),
                "AXFR",
                &self.bind,
            ],
            None,
        );
        let keep = [format!("{}.", self.bind), format!("ns1.{}.", self.bind)];
        let mut names: Vec<&str> = axfr
            .lines()
            .filter(|l| !l.starts_with(';') && !l.is_empty() && !l.contains("\tTSIG\t"))
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| !keep.iter().any(|k| k == n))
            .collect();
        names.dedup();
        if names.is_empty() {
            return;
        }
        self.nsupdate(
            &names
                .iter()
                .map(|n| format!("update delete {n}"))
                .collect::<Vec<_>>(),
        );
    }

    /// Sends `lines` to the BIND zone as one signed update.
    fn nsupdate(&self, lines: &[String]) {
        let script = format!(
            "server 127.0.0.1 {}\nzone {}\n{}\nsend\n",
            self.bind_port(),
            self.bind,
            lines.join("\n")
        );
        run(&["nsupdate", "-y", &self.tsig()], Some(&script));
    }

    /// `dig +short` of one name and type at the server holding it.
    fn dig(&self, name: &str, rtype: &str) -> String {
        let port = if name.ends_with(&self.bind) {
            self.bind_port()
        } else {
            self.pdns_port()
        };
        run(
            &["dig", "+short", "@127.0.0.1", "-p", port, name, rtype],
            None,
        )
        .trim_end()
        .to_string()
    }

    /// The inventory: one host with `public`, and the two zones.
    fn inventory(&self, public: &str, pdns: &str, bind: &str) -> String {
        format!(
            "{}dns:
  ttl: 60
  zones:
    {}:
      powerdns: {{api: \"{pdns}\", api_key_variable: BERTH_DNS_PDNS_KEY}}
    {}:
      rfc2136: {{server: \"{bind}\", key_name: {}, secret_variable: BERTH_DNS_TSIG}}
",
            hosts(public),
            self.pdns,
            self.bind,
            self.rig.get("RIG_TSIG_KEY_NAME"),
        )
    }

    fn usual_inventory(&self, public: &str) -> String {
        self.inventory(
            public,
            self.rig.get("RIG_PDNS_API"),
            self.rig.get("RIG_BIND_DNS"),
        )
    }

    /// `allocations.yml` with `apps`: (app, env, domain) each.
    fn allocations(apps: &[(&str, &str, String)]) -> String {
        let mut text = String::from(
            "hosts:\n  web-1: {environments: [test, production], ports: {first: 20000, last: 29999}}\napps:\n",
        );
        if apps.is_empty() {
            text = text.replace("apps:\n", "apps: {}\n");
        }
        let mut port = 20000;
        let mut last_app = "";
        for (app, env, domain) in apps {
            if *app != last_app {
                text.push_str(&format!("  {app}:\n"));
                last_app = app;
            }
            text.push_str(&format!(
                "    {env}: {{host: web-1, ports: [{port}, {}], domains: [{domain}]}}\n",
                port + 1
            ));
            port += 2;
        }
        text
    }

    /// `allocations.yml` of `count` apps `app-<i>`, each with a production
    /// domain and a test domain.
    fn fleet(
        count: usize,
        production: impl Fn(usize) -> String,
        test: impl Fn(usize) -> String,
    ) -> String {
        let names: Vec<(String, &str, String)> = (0..count)
            .flat_map(|i| {
                [
                    (format!("app-{i}"), "production", production(i)),
                    (format!("app-{i}"), "test", test(i)),
                ]
            })
            .collect();
        Zones::allocations(
            &names
                .iter()
                .map(|(a, e, d)| (a.as_str(), *e, d.clone()))
                .collect::<Vec<_>>(),
        )
    }

    fn berth(&self, command: &str, inventory: &str, allocations: &str, extra: &[&str]) -> Berth {
        let inventory_file = self.dir.path().join("inventory.yml");
        let allocations_file = self.dir.path().join("allocations.yml");
        std::fs::write(&inventory_file, inventory).unwrap();
        std::fs::write(&allocations_file, allocations).unwrap();
        Berth::new()
            .args(["dns", command, "--inventory"])
            .arg_path(&inventory_file)
            .args(["--allocations"])
            .arg_path(&allocations_file)
            .args(extra)
            .env("BERTH_DNS_PDNS_KEY", self.rig.get("RIG_PDNS_API_KEY"))
            .env("BERTH_DNS_TSIG", self.rig.get("RIG_TSIG_SECRET"))
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Zones {
    fn drop(&mut self) {
        self.pdns_api("DELETE", &format!("/{}.", self.pdns), None);
    }
}

fn public(v4: &str) -> String {
    format!("    public_ipv4: {v4}\n    public_ipv6: \"{V6}\"\n")
}

fn owner(app: &str, env: &str) -> String {
    format!("\"heritage=berth,berth/owner=berth,berth/app={app},berth/env={env}\"")
}

#[test]
#[ignore = "rig: PowerDNS and BIND (tests/rig/up); scripts/test runs it"]
fn records_are_created_changed_and_removed_on_both_servers() {
    let z = Zones::new("life", 0);
    let (p, b) = (z.pdns.clone(), z.bind.clone());
    let apps = [
        ("shop", "production", format!("shop.{p}")),
        ("shop", "test", format!("shop.test.{b}")),
        ("blog", "production", format!("blog.{b}")),
    ];
    let allocations = Zones::allocations(&apps);

    // Planned: shown, and nothing written.
    z.berth("plan", &z.usual_inventory(&public(V4)), &allocations, &[])
        .run()
        .expect(ExitStatus::Success)
        .expect_stdout(&format!(
            "zone {p} (powerdns): 1 to create, 0 to update, 0 to delete, 0 unchanged
  + shop.{p} A {V4}, AAAA {V6} (shop/production)
  planned
zone {b} (rfc2136): 2 to create, 0 to update, 0 to delete, 0 unchanged
  + blog.{b} A {V4}, AAAA {V6} (blog/production)
  + shop.test.{b} A {V4}, AAAA {V6} (shop/test)
  planned
"
        ));
    assert_eq!(z.dig(&format!("shop.{p}"), "A"), "");
    assert_eq!(z.dig(&format!("blog.{b}"), "A"), "");
    // `apply --dry-run` is the plan.
    z.berth(
        "apply",
        &z.usual_inventory(&public(V4)),
        &allocations,
        &["--dry-run"],
    )
    .run()
    .expect(ExitStatus::Success);
    assert_eq!(z.dig(&format!("blog.{b}"), "A"), "");

    // Created, with their ownership records.
    z.berth("apply", &z.usual_inventory(&public(V4)), &allocations, &[])
        .run()
        .expect(ExitStatus::Success)
        .expect_stdout(&format!(
            "zone {p} (powerdns): 1 to create, 0 to update, 0 to delete, 0 unchanged
  + shop.{p} A {V4}, AAAA {V6} (shop/production)
  applied with 1 read(s) and 1 write request(s)
zone {b} (rfc2136): 2 to create, 0 to update, 0 to delete, 0 unchanged
  + blog.{b} A {V4}, AAAA {V6} (blog/production)
  + shop.test.{b} A {V4}, AAAA {V6} (shop/test)
  applied with 1 read(s) and 1 write request(s)
"
        ));
    for name in [
        format!("shop.{p}"),
        format!("shop.test.{b}"),
        format!("blog.{b}"),
    ] {
        assert_eq!(z.dig(&name, "A"), V4, "{name}");
        assert_eq!(z.dig(&name, "AAAA"), V6, "{name}");
    }
    assert_eq!(
        z.dig(&format!("_berth.shop.{p}"), "TXT"),
        owner("shop", "production")
    );
    assert_eq!(
        z.dig(&format!("_berth.shop.test.{b}"), "TXT"),
        owner("shop", "test")
    );

    // Again: nothing to write. Not even verbose output shows a key.
    let verbose = z
        .berth(
            "apply",
            &z.usual_inventory(&public(V4)),
            &allocations,
            &["--verbose"],
        )
        .run()
        .expect(ExitStatus::Success);
    for secret in ["RIG_PDNS_API_KEY", "RIG_TSIG_SECRET"] {
        let value = z.rig.get(secret);
        assert!(
            !verbose.stdout().contains(value) && !verbose.stderr().contains(value),
            "{secret} shown"
        );
    }
    let again = z
        .berth(
            "apply",
            &z.usual_inventory(&public(V4)),
            &allocations,
            &["--output", "json"],
        )
        .run()
        .expect(ExitStatus::Success);
    let json: serde_json::Value = serde_json::from_str(&again.stdout()).unwrap();
    for zone in json["zones"].as_array().unwrap() {
        assert_eq!(zone["status"], "nothing to change", "{zone}");
        assert_eq!(zone["requests"]["writes"], 0, "{zone}");
    }

    // The host moves to another address: every name is updated.
    let moved = "203.0.113.20";
    z.berth(
        "apply",
        &z.usual_inventory(&public(moved)),
        &allocations,
        &[],
    )
    .run()
    .expect(ExitStatus::Success)
    .expect_stdout(&format!(
        "zone {p} (powerdns): 0 to create, 1 to update, 0 to delete, 0 unchanged
  ~ shop.{p} A {V4}, AAAA {V6} ttl 60 -> A {moved}, AAAA {V6} (shop/production)
  applied with 1 read(s) and 1 write request(s)
zone {b} (rfc2136): 0 to create, 2 to update, 0 to delete, 0 unchanged
  ~ blog.{b} A {V4}, AAAA {V6} ttl 60 -> A {moved}, AAAA {V6} (blog/production)
  ~ shop.test.{b} A {V4}, AAAA {V6} ttl 60 -> A {moved}, AAAA {V6} (shop/test)
  applied with 1 read(s) and 1 write request(s)
"
    ));
    assert_eq!(z.dig(&format!("shop.{p}"), "A"), moved);
    assert_eq!(z.dig(&format!("blog.{b}"), "A"), moved);

    // A domain leaves the allocations: its records go, the others stay.
    let fewer = Zones::allocations(&apps[..2]);
    z.berth("apply", &z.usual_inventory(&public(moved)), &fewer, &[])
        .run()
        .expect(ExitStatus::Success)
        .expect_stdout(&format!(
            "zone {p} (powerdns): 0 to create, 0 to update, 0 to delete, 1 unchanged
  nothing to change
zone {b} (rfc2136): 0 to create, 0 to update, 1 to delete, 1 unchanged
  - blog.{b} A {moved}, AAAA {V6} ttl 60
  applied with 1 read(s) and 1 write request(s)
"
        ));
    assert_eq!(z.dig(&format!("blog.{b}"), "A"), "");
    assert_eq!(z.dig(&format!("_berth.blog.{b}"), "TXT"), "");
    assert_eq!(z.dig(&format!("shop.test.{b}"), "A"), moved);
}

/// The exit status and the error lines of a failed sync.
fn refused(run: Run) -> String {
    let run = run.expect(ExitStatus::Failure);
    run.stderr()
}

#[test]
#[ignore = "rig: PowerDNS and BIND (tests/rig/up); scripts/test runs it"]
fn provider_faults_are_named_with_a_hint_and_change_nothing() {
    let z = Zones::new("faults", 1);
    let (p, b) = (z.pdns.clone(), z.bind.clone());
    let allocations = Zones::allocations(&[
        ("shop", "production", format!("shop.{p}")),
        ("shop", "test", format!("shop.test.{b}")),
    ]);
    let closed = format!("127.0.0.1:{}", free_port());

    // Down: nothing listens.
    let inventory = z.inventory(&public(V4), &format!("http://{closed}"), &closed);
    let out = z.berth("apply", &inventory, &allocations, &[]).run();
    assert_eq!(
        out.stdout()
            .lines()
            .map(|l| l.split(": ").next().unwrap())
            .collect::<Vec<_>>(),
        [
            format!("zone {p} (powerdns)"),
            format!("zone {b} (rfc2136)")
        ]
    );
    let stdout = out.stdout();
    assert!(stdout.contains("cannot be reached"), "{stdout}");
    let stderr = refused(out);
    assert!(
        stderr.contains(&format!(
            "zone {p}: http://{closed}/api/v1/servers/localhost cannot be reached"
        )) && stderr.contains("(and 1 more, above)")
            && stderr.contains("check that the DNS server runs"),
        "{stderr}"
    );

    // Wrong keys: the PowerDNS API key, the TSIG secret, an unknown key.
    let mut wrong = z.berth(
        "apply",
        &z.usual_inventory(&public(V4)),
        &allocations,
        &["--zone", &p],
    );
    wrong = wrong.env("BERTH_DNS_PDNS_KEY", "not-the-key");
    let stderr = refused(wrong.run());
    assert!(
        stderr.contains("refused the credential: HTTP 401 Unauthorized"),
        "{stderr}"
    );
    let wrong = z
        .berth(
            "apply",
            &z.usual_inventory(&public(V4)),
            &allocations,
            &["--zone", &b],
        )
        .env("BERTH_DNS_TSIG", z.rig.get("RIG_TSIG_WRONG_SECRET"));
    let stderr = refused(wrong.run());
    assert!(stderr.contains("refused the credential: NOTAUTH/BADSIG: the server knows the key's name, but the secret differs"), "{stderr}");
    let unknown_key = z.usual_inventory(&public(V4)).replace(
        &format!("key_name: {}", z.rig.get("RIG_TSIG_KEY_NAME")),
        "key_name: berth-rig-wrong",
    );
    let stderr = refused(
        z.berth("apply", &unknown_key, &allocations, &["--zone", &b])
            .env("BERTH_DNS_TSIG", z.rig.get("RIG_TSIG_WRONG_SECRET"))
            .run(),
    );
    assert!(stderr.contains("refused the credential: NOTAUTH/BADKEY: the server does not know the key berth-rig-wrong."), "{stderr}");
    // A missing variable is named.
    let stderr = refused(
        z.berth(
            "apply",
            &z.usual_inventory(&public(V4)),
            &allocations,
            &["--zone", &b],
        )
        .env("BERTH_DNS_TSIG", "")
        .run(),
    );
    assert!(
        stderr.contains("the CI/CD variable BERTH_DNS_TSIG is not set in this job"),
        "{stderr}"
    );

    // A runner whose clock is an hour off: BIND refuses the signature's
    // time (libfaketime shifts this process's clock only).
    let skewed = Command::new("faketime")
        .args(["-f", "-1h"])
        .arg(env!("CARGO_BIN_EXE_berth"))
        .args(["dns", "apply", "--zone", &b, "--inventory"])
        .arg(z.dir().join("inventory.yml"))
        .arg("--allocations")
        .arg(z.dir().join("allocations.yml"))
        .env("BERTH_DNS_TSIG", z.rig.get("RIG_TSIG_SECRET"))
        .output()
        .unwrap();
    assert_eq!(skewed.status.code(), Some(ExitStatus::Failure.code()));
    assert_eq!(
        String::from_utf8_lossy(&skewed.stderr),
        format!(
            "error: zone {b}: 127.0.0.1:5301 rejected the TSIG signature as out of time (BADTIME)
  hint: the runner's and the server's clocks differ by more than the 300 s TSIG allows; fix NTP on either
"
        )
    );

    // Zones the servers do not have.
    let missing = z
        .usual_inventory(&public(V4))
        .replace(&format!("    {p}:"), "    nope.pdns.test:")
        .replace(&format!("    {b}:"), "    nope.rfc2136.test:");
    let gone = Zones::allocations(&[
        ("shop", "production", "shop.nope.pdns.test".into()),
        ("shop", "test", "shop.test.nope.rfc2136.test".into()),
    ]);
    let out = z.berth("apply", &missing, &gone, &[]).run();
    let stdout = out.stdout();
    assert_eq!(
        stdout,
        "zone nope.pdns.test (powerdns): zone nope.pdns.test does not exist on http://127.0.0.1:8081/api/v1/servers/localhost\n\
         zone nope.rfc2136.test (rfc2136): zone nope.rfc2136.test does not exist on 127.0.0.1:5301\n",
    );
    let stderr = refused(out);
    assert!(stderr.contains("create the zone on the server"), "{stderr}");

    // Nothing of any of it reached the zones.
    assert_eq!(z.dig(&format!("shop.{p}"), "A"), "");
    assert_eq!(z.dig(&format!("shop.test.{b}"), "A"), "");
}

#[test]
#[ignore = "rig: PowerDNS and BIND (tests/rig/up); scripts/test runs it"]
fn a_record_berth_does_not_own_is_reported_and_left_alone() {
    let z = Zones::new("foreign", 2);
    let (p, b) = (z.pdns.clone(), z.bind.clone());
    // Someone else's records, at names the fleet now wants.
    let (status, body) = z.pdns_api(
        "PATCH",
        &format!("/{p}."),
        Some(&format!(
            r#"{{"rrsets":[{{"name":"www.{p}.","type":"A","ttl":3600,"changetype":"REPLACE","records":[{{"content":"198.51.100.7","disabled":false}}]}}]}}"#
        )),
    );
    assert_eq!(status, "204", "{body}");
    z.nsupdate(&[format!(
        "update add www.{b}. 300 CNAME elsewhere.example.net."
    )]);
    let allocations = Zones::allocations(&[
        ("shop", "production", format!("www.{p}")),
        ("shop", "test", format!("www.{b}")),
        ("blog", "production", format!("blog.{b}")),
    ]);
    let out = z
        .berth("apply", &z.usual_inventory(&public(V4)), &allocations, &[])
        .run()
        .expect_stdout(&format!(
            "zone {p} (powerdns): 0 to create, 0 to update, 0 to delete, 0 unchanged, 1 in conflict
  ! www.{p} (shop/production): not berth's: www.{p}. 3600 A 198.51.100.7
  nothing to change
zone {b} (rfc2136): 1 to create, 0 to update, 0 to delete, 0 unchanged, 1 in conflict
  + blog.{b} A {V4}, AAAA {V6} (blog/production)
  ! www.{b} (shop/test): not berth's: www.{b}. 300 CNAME elsewhere.example.net.
  applied with 1 read(s) and 1 write request(s)
"
        ));
    let stderr = refused(out);
    assert!(
        stderr.contains(&format!(
            "zone {p}: 1 name(s) hold records berth does not own (and 1 more, above)"
        )) && stderr.contains("berth never overwrites them"),
        "{stderr}"
    );
    // Theirs untouched; the free name published.
    assert_eq!(z.dig(&format!("www.{p}"), "A"), "198.51.100.7");
    assert_eq!(
        z.dig(&format!("www.{b}"), "CNAME"),
        "elsewhere.example.net."
    );
    assert_eq!(z.dig(&format!("_berth.www.{b}"), "TXT"), "");
    assert_eq!(z.dig(&format!("blog.{b}"), "A"), V4);

    // Once the owner removes theirs, the next sync takes the name.
    z.nsupdate(&[format!("update delete www.{b}. CNAME")]);
    z.berth(
        "apply",
        &z.usual_inventory(&public(V4)),
        &allocations,
        &["--zone", &b],
    )
    .run()
    .expect(ExitStatus::Success);
    assert_eq!(z.dig(&format!("www.{b}"), "A"), V4);
}

#[test]
#[ignore = "rig: PowerDNS and BIND (tests/rig/up); scripts/test runs it"]
fn a_large_change_needs_the_flag() {
    let z = Zones::new("threshold", 3);
    let (p, b) = (z.pdns.clone(), z.bind.clone());
    let allocations = Zones::fleet(
        12,
        |i| format!("app-{i}.{p}"),
        |i| format!("app-{i}.test.{b}"),
    );
    z.berth("apply", &z.usual_inventory(&public(V4)), &allocations, &[])
        .run()
        .expect(ExitStatus::Success);
    // Every host address changes: 12 of 12 names per zone.
    let moved = "203.0.113.30";
    let out = z
        .berth(
            "apply",
            &z.usual_inventory(&public(moved)),
            &allocations,
            &[],
        )
        .run();
    let stdout = out.stdout();
    for zone in [&p, &b] {
        assert!(
            stdout.contains(&format!(
                "  refused: zone {zone}: 12 update(s) and 0 delete(s) of the 12 names berth owns there exceed the 30% threshold\n"
            )),
            "{stdout}"
        );
    }
    let stderr = refused(out);
    assert!(
        stderr.contains("run again with --allow-large-change"),
        "{stderr}"
    );
    assert_eq!(z.dig(&format!("app-0.{p}"), "A"), V4);
    assert_eq!(z.dig(&format!("app-0.test.{b}"), "A"), V4);
    // With the flag, it goes through.
    z.berth(
        "apply",
        &z.usual_inventory(&public(moved)),
        &allocations,
        &["--allow-large-change"],
    )
    .run()
    .expect(ExitStatus::Success);
    assert_eq!(z.dig(&format!("app-11.{p}"), "A"), moved);
    assert_eq!(z.dig(&format!("app-11.test.{b}"), "A"), moved);
}

#[test]
#[ignore = "rig: PowerDNS and BIND (tests/rig/up); scripts/test runs it"]
fn two_syncs_at_once_converge() {
    let z = Zones::new("race", 4);
    let (p, b) = (z.pdns.clone(), z.bind.clone());
    let allocations = Zones::fleet(150, |i| format!("app-{i}.{p}"), |i| format!("app-{i}.{b}"));
    let inventory = z.usual_inventory(&public(V4));
    // Two runs with their own files, started together, zone by zone.
    let other = tempfile::tempdir().unwrap();
    let (inv2, alloc2) = (other.path().join("i.yml"), other.path().join("a.yml"));
    std::fs::write(&inv2, &inventory).unwrap();
    std::fs::write(&alloc2, &allocations).unwrap();
    let mut created = Vec::new();
    for zone in [&p, &b] {
        let flags = ["--zone", zone.as_str(), "--output", "json"];
        let first = z.berth("apply", &inventory, &allocations, &flags).spawn();
        let second = Berth::new()
            .args(["dns", "apply", "--inventory"])
            .arg_path(&inv2)
            .args(["--allocations"])
            .arg_path(&alloc2)
            .args(flags)
            .env("BERTH_DNS_PDNS_KEY", z.rig.get("RIG_PDNS_API_KEY"))
            .env("BERTH_DNS_TSIG", z.rig.get("RIG_TSIG_SECRET"))
            .spawn();
        for run in [first.wait(), second.wait()] {
            let run = run.expect(ExitStatus::Success);
            let json: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
            created.push((zone.clone(), json["zones"][0]["create"].as_u64().unwrap()));
        }
    }
    // RFC 2136: the names went out in one UPDATE, which only one run can
    // have made; the other found them made (read first, or refused by
    // the prerequisites and read again). PowerDNS's PATCH has no
    // prerequisites: both may have written the same records.
    let bind_created: Vec<u64> = created
        .iter()
        .filter(|(zone, _)| zone == &b)
        .map(|(_, n)| *n)
        .collect();
    assert!(
        bind_created == [150, 0] || bind_created == [0, 150],
        "{created:?}"
    );
    // Converged: one more plan finds nothing to do, and the names resolve.
    z.berth("plan", &inventory, &allocations, &[])
        .run()
        .expect(ExitStatus::Success)
        .expect_stdout(&format!(
            "zone {p} (powerdns): 0 to create, 0 to update, 0 to delete, 150 unchanged
  planned
zone {b} (rfc2136): 0 to create, 0 to update, 0 to delete, 150 unchanged
  planned
"
        ));
    assert_eq!(z.dig(&format!("app-149.{p}"), "A"), V4);
    assert_eq!(z.dig(&format!("app-149.{b}"), "A"), V4);
}

#[test]
#[ignore = "rig: the fake GitLab (python3, git http-backend); scripts/test runs it"]
fn a_fleet_merge_request_gets_a_note_with_its_dns_changes() {
    use crate::fake::{encoded, FakeGitLab, ROOT_TOKEN};
    use serde_json::{json, Value};
    let fake = FakeGitLab::start(json!({
        "groups": [{"path": "platform", "name": "Platform"}],
        "projects": [{"path": "platform/fleet", "initialize_with_readme": true}],
    }));
    let fleet = encoded("platform/fleet");
    fake.ok(
        ROOT_TOKEN,
        "POST",
        &format!("/projects/{fleet}/repository/branches"),
        json!({"branch": "new-shop", "ref": "main"}),
    );
    let mr = fake.ok(
        ROOT_TOKEN,
        "POST",
        &format!("/projects/{fleet}/merge_requests"),
        json!({"source_branch": "new-shop", "target_branch": "main", "title": "Allocate shop"}),
    );
    let iid = mr["iid"].as_u64().unwrap().to_string();

    let dir = tempfile::tempdir().unwrap();
    let inventory = dir.path().join("inventory.yml");
    let zones = "dns:\n  zones:\n    apps.test:\n      powerdns: {api: 'http://127.0.0.1:1', api_key_variable: BERTH_DNS_KEY}\n";
    std::fs::write(&inventory, format!("{}{zones}", hosts(&public(V4)))).unwrap();
    let before = dir.path().join("before.yml");
    let after = dir.path().join("after.yml");
    std::fs::write(
        &before,
        Zones::allocations(&[("blog", "production", "blog.apps.test".into())]),
    )
    .unwrap();
    std::fs::write(
        &after,
        Zones::allocations(&[
            ("blog", "production", "blog.apps.test".into()),
            ("shop", "production", "shop.apps.test".into()),
            ("shop", "test", "shop.test.example.org".into()),
        ]),
    )
    .unwrap();
    let diff = || {
        fake.berth(ROOT_TOKEN, "platform/fleet")
            .env("CI_MERGE_REQUEST_IID", &iid)
            .args(["dns", "diff", "--note", "--inventory"])
            .arg_path(&inventory)
            .args(["--before"])
            .arg_path(&before)
            .args(["--allocations"])
            .arg_path(&after)
    };
    // No DNS server is asked: the inventory's points at a closed port.
    diff()
        .run()
        .expect(ExitStatus::InvalidInput)
        .expect_stdout(&format!(
            "+ shop.apps.test A {V4}, AAAA {V6} (shop/production)\n"
        ));
    let notes = fake.ok(
        ROOT_TOKEN,
        "GET",
        &format!("/projects/{fleet}/merge_requests/{iid}/notes"),
        Value::Null,
    );
    let bodies: Vec<&str> = notes
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["system"] != true)
        .map(|n| n["body"].as_str().unwrap())
        .collect();
    assert_eq!(
        bodies,
        [format!(
            "<!-- berth:dns -->
### DNS changes of !{iid}

Once this is merged, `berth dns apply` makes these changes:

```diff
+ shop.apps.test A {V4}, AAAA {V6} (shop/production)
```

**Cannot be published** (`berth dns apply` will refuse):

- domain shop.test.example.org of shop/test is in no zone of the inventory's dns.zones; add the zone under dns.zones in the host inventory, or allocate a domain in a zone berth keeps"
        )],
        "GitLab keeps a note without its final newline"
    );
    // Run again: the one note is kept, not doubled.
    fake.clear_log();
    diff().run().expect(ExitStatus::InvalidInput);
    assert_eq!(fake.api_writes(), Vec::<Value>::new());
}

/// The inventory's hosts: one host, with `public` (its public addresses).
fn hosts(public: &str) -> String {
    format!(
        "hosts:
  web-1:
    ssh: {{address: 127.0.0.1, user: deploy, known_hosts: \"[127.0.0.1]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBEexampleexampleexampleexampleexamplexx\"}}
    publish_address: 127.0.0.1
    base_dir: /srv/berth
    environments: [test, production]
    front: {{include_dir: /etc/nginx/berth.d, log_dir: /var/log/nginx/berth, listen: \"0.0.0.0:80\", test_command: [/usr/sbin/nginx, -t], reload_command: [/usr/sbin/nginx, -s, reload]}}
    root_berth: [/usr/bin/sudo, -n, /usr/local/bin/berth]
{public}"
    )
}
