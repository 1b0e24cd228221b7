//! Governance of each connection: what it is for, who made it, which key last used it and whose
//! credential it is, all in its view; the host sets the purpose, and the trail records that.

use crate::harness::cli::Cli;
use crate::harness::{Seed, TestApp, assert_error, assert_error_says, both};
use latch_shared::api::host::{GetConnection, ListProviders, UpdateConnection, UpdateConnectionEndpoint};
use serde_json::{Value, json};

const READ_WRITE: &str = r#"["read", "write"]"#;

both!(purpose_provenance_and_last_use_are_recorded, |backend| async move {
    let (app, _fake) = TestApp::with_fake(backend).await;
    let run = app.connect_flow("alice", "acme").await;
    let id = run.message.unwrap()["connection_id"].as_str().unwrap().to_owned();
    let (_, providers) = app.call::<ListProviders>(&[], None).await;
    let description =
        providers["data"].as_array().unwrap().iter().find(|p| p["key"] == "acme").unwrap()["description"].clone();

    let (status, made) = app.call::<GetConnection>(&[&id], None).await;
    assert_eq!(status, 200, "{made}");
    assert_eq!(made["purpose"], description, "the provider's description by default");
    assert_eq!(made["created_by"], "alice");
    assert_eq!(made["credential_source"], "end_user");
    assert!(made["last_used_by"].is_null() && made["last_used_at"].is_null());

    let (status, _) = app.post("/v1/access-token", json!({"user_id": "alice", "provider": "acme"})).await;
    assert_eq!(status, 200);
    app.state.usage.flush(&app.state.store).await;
    let (_, used) = app.call::<GetConnection>(&[&id], None).await;
    assert_eq!(used["last_used_by"], "test-host", "the API key's name");
    assert!(used["last_used_at"].is_string());

    let purpose = UpdateConnection { purpose: "Posts a message on every deploy".into() };
    let (status, patched) = app.call::<UpdateConnectionEndpoint>(&[&id], Some(&purpose)).await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["purpose"], "Posts a message on every deploy");
    assert_eq!(patched["updated_at"], used["updated_at"], "not a change of tokens or status");
    let trail = app.activity(&format!("connection_id={id}")).await;
    let changed = trail.iter().find(|e| e["action"] == "purpose_changed").expect("in the trail");
    assert_eq!(
        (changed["actor"]["kind"].as_str(), changed["detail"].as_str()),
        (Some("api_key"), Some("Posts a message on every deploy"))
    );
});

both!(a_purpose_must_be_a_line_of_text_about_a_connection_that_exists, |backend| async move {
    let (app, _fake) = TestApp::with_fake(backend).await;
    let row = app.seed(Default::default()).await;
    let set = |purpose: &str| UpdateConnection { purpose: purpose.into() };
    let missing = app.call::<UpdateConnectionEndpoint>(&["conn_nope"], Some(&set("x"))).await;
    assert_error(&missing, 404, "connection_not_found");
    for bad in ["", "   ", &"x".repeat(501), "line\nbreak"] {
        let got = app.call::<UpdateConnectionEndpoint>(&[&row.id], Some(&set(bad))).await;
        assert_error_says(&got, 422, "invalid_request", "purpose");
        assert_eq!(got.1["error"]["field"], "purpose");
    }
    let unknown = app
        .host(reqwest::Method::PATCH, &format!("/v1/connections/{}", row.id))
        .json(&json!({"purpose": "x", "owner": "eve"}));
    assert_error(&crate::harness::send(unknown).await, 422, "invalid_request");
    let (_, kept) = app.call::<GetConnection>(&[&row.id], None).await;
    assert!(kept["purpose"].is_null(), "nothing was changed: {kept}");
});

both!(a_purpose_given_to_the_widget_token_is_the_connections_and_the_widget_shows_it, |backend| async move {
    let (app, _fake) = TestApp::with_fake(backend).await;
    let minted = |purpose: &str| json!({"user_id": "alice", "providers": ["acme"], "allowed_origin": crate::harness::HOST_ORIGIN, "purpose": purpose});
    let bad = app.post("/v1/widget-tokens", minted("two\nlines")).await;
    assert_error_says(&bad, 422, "invalid_request", "purpose");
    let (status, body) = app.post("/v1/widget-tokens", minted("Posts a message on every deploy")).await;
    assert_eq!(status, 201, "{body}");
    let token = body["token"].as_str().unwrap();
    let (_, authorize) = app.connect(token, json!({"provider": "acme"})).await;
    let run = crate::harness::browser::Browser::new().run(&app.url, &authorize).await;
    let id = run.message.unwrap()["connection_id"].as_str().unwrap().to_owned();
    let (_, connection) = app.call::<GetConnection>(&[&id], None).await;
    assert_eq!(connection["purpose"], "Posts a message on every deploy");
    let (_, listed) = app.widget(reqwest::Method::GET, "/widget/v1/integrations", token, None).await;
    assert_eq!(listed["data"][0]["connections"][0]["purpose"], "Posts a message on every deploy");
});

both!(the_inventory_answers_who_owns_what_can_do_what_and_exports_csv, |backend| async move {
    use latch_shared::api::host::ListInventory;
    use latch_shared::{ScopeAccess, ScopeDetail};
    let detail = |name: &str, access| ScopeDetail {
        name: name.into(),
        description: Some(format!("{name}s")),
        access: Some(access),
    };
    let (app, _fake) = TestApp::with_fake_configured(backend, |c| {
        c.providers[0].scope_details = vec![detail("read", ScopeAccess::Read), detail("write", ScopeAccess::Write)];
    })
    .await;
    let alice = app.seed(Seed::default()).await;
    let bob =
        app.seed(Seed { user_id: "bob", organization_id: Some("org-1"), account_id: "b1", ..Seed::default() }).await;
    let plain = app.seed(Seed { provider: "plain", user_id: "carol", account_id: "c1", ..Seed::default() }).await;
    let stale =
        app.seed(Seed { user_id: "dave", account_id: "d1", status: "needs_reauthorization", ..Seed::default() }).await;
    // alice's connection only reads, carol's has a purpose with a comma and a quote, bob's was used.
    app.db.execute(&format!("UPDATE connections SET scopes = 'read' WHERE id = '{}'", alice.id)).await;
    let purpose = UpdateConnection { purpose: "Deploys, \"prod\" only".into() };
    assert_eq!(app.call::<UpdateConnectionEndpoint>(&[&plain.id], Some(&purpose)).await.0, 200);
    let now = app.state.clock.unix();
    let used = |id: &str, at: i64, by: &str| {
        format!("INSERT INTO connection_usage (connection_id, last_used_at, last_used_by) VALUES ('{id}', {at}, {by})")
    };
    app.db.execute(&used(&bob.id, now, "'ci'")).await;
    app.db.execute(&used(&stale.id, now - 40 * 86_400, "NULL")).await;

    let ids = |path: &str| {
        let app = &app;
        let path = path.to_owned();
        async move {
            let (status, body) = app.get(&path).await;
            assert_eq!(status, 200, "{path}: {body}");
            let mut ids: Vec<String> =
                body["data"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect();
            ids.sort();
            ids
        }
    };
    let sorted = |mut v: Vec<&str>| {
        v.sort();
        v.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    assert_eq!(ids("/v1/inventory").await.len(), 4);
    assert_eq!(ids("/v1/inventory?user_id=bob").await, sorted(vec![&bob.id]));
    assert_eq!(ids("/v1/inventory?organization_id=org-1").await, sorted(vec![&bob.id]));
    assert_eq!(ids("/v1/inventory?provider=plain").await, sorted(vec![&plain.id]));
    assert_eq!(ids("/v1/inventory?status=needs_reauthorization").await, sorted(vec![&stale.id]));
    assert_eq!(ids("/v1/inventory?scope=write").await, sorted(vec![&bob.id, &plain.id, &stale.id]));
    assert_eq!(ids("/v1/inventory?scope=wri_e").await, Vec::<String>::new(), "a scope is matched literally");
    assert_eq!(ids("/v1/inventory?access=write").await, sorted(vec![&bob.id, &stale.id]), "plain's scopes say nothing");
    assert_eq!(ids("/v1/inventory?access=read").await, sorted(vec![&alice.id, &plain.id]));
    assert_eq!(ids("/v1/inventory?credential_source=end_user").await.len(), 4);
    assert_eq!(ids("/v1/inventory?credential_source=developer").await, Vec::<String>::new());
    assert_eq!(ids("/v1/inventory?unused_days=30").await, sorted(vec![&alice.id, &plain.id, &stale.id]));
    assert_eq!(ids("/v1/inventory?access=write&unused_days=30&provider=acme").await, sorted(vec![&stale.id]));

    // The fields of one entry.
    let (_, one) = app.call::<ListInventory>(&[], None).await;
    let bobs = one["data"].as_array().unwrap().iter().find(|e| e["id"] == bob.id.as_str()).unwrap().clone();
    assert_eq!(bobs["user_id"], "bob");
    assert_eq!(bobs["organization_id"], "org-1");
    assert_eq!(bobs["account_id"], "b1");
    assert_eq!(bobs["credential_source"], "end_user");
    assert_eq!(bobs["writes"], true);
    assert_eq!(
        bobs["scopes"],
        json!([{"name": "read", "description": "reads", "access": "read"}, {"name": "write", "description": "writes", "access": "write"}])
    );
    assert_eq!(bobs["last_used_by"], "ci");
    assert!(bobs["last_used_at"].is_string() && bobs.get("access_token").is_none());

    // Paging, as every listing.
    let (_, first) = app.get("/v1/inventory?limit=3").await;
    assert_eq!(first["data"].as_array().unwrap().len(), 3);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = app.get(&format!("/v1/inventory?limit=3&cursor={cursor}")).await;
    assert_eq!((second["data"].as_array().unwrap().len(), second["next_cursor"].is_null()), (1, true));
    let (_, filtered) = app.get("/v1/inventory?access=write&limit=1").await;
    let next = filtered["next_cursor"].as_str().expect("a page filtered after the query still goes on");
    let (_, rest) = app.get(&format!("/v1/inventory?access=write&limit=1&cursor={next}")).await;
    assert_eq!(rest["data"].as_array().unwrap().len(), 1);

    // CSV, by query or by Accept; read back with a CSV parser.
    for request in [
        app.host(reqwest::Method::GET, "/v1/inventory?format=csv"),
        app.host(reqwest::Method::GET, "/v1/inventory").header("accept", "text/csv"),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/csv; charset=utf-8");
        let text = response.text().await.unwrap();
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
        assert_eq!(header, latch_server::connections::inventory::CSV_HEADER);
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 4);
        let carol = rows.iter().find(|r| &r[0] == plain.id.as_str()).unwrap();
        assert_eq!(&carol[8], "Deploys, \"prod\" only", "RFC 4180 quoting round-trips");
        let bob_row = rows.iter().find(|r| &r[0] == bob.id.as_str()).unwrap();
        assert_eq!((&bob_row[9], &bob_row[10], &bob_row[15]), ("read write", "write", "ci"));
    }
    let (status, paged) = {
        let response = app.host(reqwest::Method::GET, "/v1/inventory?format=csv&limit=2").send().await.unwrap();
        (response.status(), response.headers().get("latch-next-cursor").cloned())
    };
    assert_eq!(status, 200);
    assert!(paged.is_some(), "the CSV page says where the next one starts");

    // Bad filters are named.
    for (query, field) in [
        ("limit=0", "limit"),
        ("status=gone", "status"),
        ("access=admin", "access"),
        ("unused_days=-1", "unused_days"),
        ("unused_days=36501", "unused_days"),
        ("format=xml", "format"),
    ] {
        let got = app.get(&format!("/v1/inventory?{query}")).await;
        assert_error(&got, 422, "invalid_request");
        assert_eq!(got.1["error"]["field"], field, "{query}");
    }
});

both!(a_provider_removed_while_connections_use_it_stops_the_start, |backend| async move {
    let (app, _fake) = TestApp::with_fake(backend).await;
    app.seed(Seed::default()).await;
    app.seed(Seed { account_id: "acct-2", ..Seed::default() }).await;
    let mut config = app.state.config.clone();
    config.providers.retain(|p| p.key != "acme");
    let refused = latch_server::AppState::build(config.clone(), Default::default()).await.unwrap_err().to_string();
    assert!(refused.contains("acme (2 connections)"), "{refused}");
    assert!(refused.contains("allow_orphaned_providers"), "says how to go on: {refused}");
    config.allow_orphaned_providers = true;
    assert!(latch_server::AppState::build(config, Default::default()).await.is_ok(), "the operator said so");
});

both!(providers_list_counts_connections_and_an_unknown_provider_is_named, |backend| async move {
    let (app, fake) = TestApp::with_fake(backend).await;
    app.seed(Seed::default()).await;
    app.seed(Seed { account_id: "acct-2", ..Seed::default() }).await;
    app.seed(Seed { account_id: "acct-3", status: "needs_reauthorization", ..Seed::default() }).await;
    let cli = Cli::new(&app, &fake.url, &[("acme", READ_WRITE), ("plain", READ_WRITE)]);
    let (ok, listed, err) = cli.run(&["providers", "list"]);
    assert!(ok, "{err}");
    assert!(listed.contains("acme\tacme\tread,write\tsecret stored\t2 live\t1 need reauthorization\n"), "{listed}");
    assert!(listed.contains("plain\tplain\tread,write\tsecret stored\t0 live\t0 need reauthorization\n"), "{listed}");
    let (ok, _, err) = cli.run(&["secret", "add", "--provider", "nope"]);
    assert!(!ok && err.contains("provider_not_found"), "{err}");
});

both!(the_cli_lists_and_shows_the_inventory, |backend| async move {
    let (app, fake) = TestApp::with_fake(backend).await;
    let alice = app.seed(Seed::default()).await;
    let bob =
        app.seed(Seed { user_id: "bob", account_id: "b1", status: "needs_reauthorization", ..Seed::default() }).await;
    let cli = Cli::new(&app, &fake.url, &[("acme", r#"["read", { name = "write", access = "write" }]"#)]);
    let run = |args: &[&str]| cli.run(args);
    let (ok, table, err) = run(&["connections", "list"]);
    assert!(ok, "{err}");
    assert_eq!(table.lines().count(), 2, "{table}");
    assert!(
        table.contains(&format!("{}\tacme\tbob\tb1 at acme\tneeds_reauthorization\t-\tnever used", bob.id)),
        "{table}"
    );
    let (_, only_bob, _) = run(&["connections", "list", "--status", "needs_reauthorization", "--format", "json"]);
    let only_bob: Value = serde_json::from_str(&only_bob).unwrap();
    assert_eq!(only_bob.as_array().unwrap().len(), 1);
    assert_eq!(only_bob[0]["id"], bob.id.as_str());
    assert_eq!(only_bob[0]["writes"], true, "the scope meanings come from latch.toml");
    let (_, csv, _) = run(&["connections", "list", "--user", "alice", "--format", "csv"]);
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!((rows.len(), &rows[0][0]), (1, alice.id.as_str()));
    let (_, writers, _) = run(&["connections", "list", "--access", "write", "--unused-days", "90", "--format", "json"]);
    assert_eq!(serde_json::from_str::<Value>(&writers).unwrap().as_array().unwrap().len(), 2);
    let (ok, shown, _) = run(&["connections", "show", &alice.id]);
    assert!(ok);
    assert_eq!(serde_json::from_str::<Value>(&shown).unwrap()["user_id"], "alice");
    let (ok, _, err) = run(&["connections", "show", "conn_nope"]);
    assert!(!ok && err.contains("connection_not_found"), "{err}");
    let (ok, _, err) = run(&["connections", "list", "--status", "sleeping"]);
    assert!(!ok && err.contains("--status"), "{err}");
});

both!(the_cli_gets_a_token_and_shows_it_only_when_asked, |backend| async move {
    let (app, fake) = TestApp::with_fake(backend).await;
    let row = app.seed(Seed::default()).await;
    let cli = Cli::new(&app, &fake.url, &[("acme", READ_WRITE)]);
    let run = |args: &[&str]| {
        let (ok, out, err) = cli.run(args);
        assert!(ok, "{err}");
        out
    };
    let hidden = run(&["token", "get", "--user", "alice", "--provider", "acme"]);
    assert!(!hidden.contains("at-default"), "{hidden}");
    let hidden: Value = serde_json::from_str(&hidden).unwrap();
    assert_eq!((hidden["active"].as_bool(), hidden["connection_id"].as_str()), (Some(true), Some(row.id.as_str())));
    let shown: Value =
        serde_json::from_str(&run(&["token", "get", "--user", "alice", "--provider", "acme", "--show-token"])).unwrap();
    assert_eq!(shown["access_token"], "at-default");
    let none: Value = serde_json::from_str(&run(&["token", "get", "--user", "zoe", "--provider", "acme"])).unwrap();
    assert_eq!((none["active"].as_bool(), none["error"].as_str()), (Some(false), Some("not_installed")));
    let trail = app.activity(&format!("connection_id={}", row.id)).await;
    assert!(trail.iter().any(|e| e["action"] == "token_retrieved" && e["actor"]["name"] == "cli"), "{trail:?}");
});

both!(the_cli_lists_keys_by_id_never_their_material, |backend| async move {
    let app = TestApp::start(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let run = |master: Option<&str>| {
        let mut cmd = crate::harness::latch_command(dir.path(), &app.db.url);
        if let Some(key) = master {
            cmd.env("LATCH_MASTER_KEY", key);
        }
        let out = cmd.args(["keys", "list"]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let listed = run(None);
    let active = app.state.vault.active_key_id();
    assert!(listed.contains(&format!("master\t{active}\tactive\n")), "{listed}");
    assert!(listed.contains("widget-signing\tsk_first\tsigning\tcreated "), "{listed}");
    assert!(!listed.contains(crate::harness::MASTER_KEY), "no key material");
    let other = latch_server::vault::MasterKey::generate_base64();
    assert!(
        run(Some(&other)).contains(&format!("master\t{active}\tmissing\n")),
        "a key the operator no longer configures"
    );
});

both!(the_cli_reads_the_trail_newest_first_and_since, |backend| async move {
    let (app, _fake) = TestApp::with_fake(backend).await;
    let row = app.seed(Seed::default()).await;
    for purpose in ["First", "Second"] {
        let body = UpdateConnection { purpose: purpose.into() };
        assert_eq!(app.call::<UpdateConnectionEndpoint>(&[&row.id], Some(&body)).await.0, 200);
    }
    app.db.execute("UPDATE activity SET at = at - 7200 WHERE detail = 'First'").await;
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let mut cmd = crate::harness::latch_command(dir.path(), &app.db.url);
        let out = cmd.arg("activity").args(args).output().unwrap();
        (out.status.success(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
    };
    let (ok, all, err) = run(&["--connection", &row.id, "--format", "json"]);
    assert!(ok, "{err}");
    let all: Value = serde_json::from_str(&all).unwrap();
    let details: Vec<&str> = all.as_array().unwrap().iter().map(|e| e["detail"].as_str().unwrap()).collect();
    assert_eq!(details, ["Second", "First"], "newest first");
    let (_, recent, _) = run(&["--connection", &row.id, "--since", "1h"]);
    assert_eq!(recent.lines().count(), 1, "{recent}");
    assert!(recent.contains("api_key:test-host\tpurpose_changed\tsuccess") && recent.contains("Second"), "{recent}");
    let (ok, _, err) = run(&["--since", "1w"]);
    assert!(!ok && err.contains("--since"), "{err}");
});

both!(the_cli_removes_connections_and_unorphans_a_provider, |backend| async move {
    let (app, fake) = TestApp::with_fake(backend).await;
    let one = app.seed(Seed::default()).await;
    app.seed(Seed { account_id: "acct-2", ..Seed::default() }).await;
    app.seed(Seed { provider: "plain", account_id: "p1", ..Seed::default() }).await;
    // `acme` is gone from this configuration: its connections are orphans.
    let cli = Cli::new(&app, &fake.url, &[("plain", READ_WRITE)]);
    let (ok, _, err) = cli.run(&["connections", "list"]);
    assert!(ok, "listing needs no provider: {err}");
    let (ok, _, err) = cli.run(&["token", "get", "--user", "alice", "--provider", "plain"]);
    assert!(!ok && err.contains("acme (2 connections)"), "the orphan check: {err}");
    let (ok, _, err) = cli.run(&["connections", "remove", "--provider", "acme"]);
    assert!(!ok && err.contains("--yes"), "no terminal, no --yes: {err}");
    assert_eq!(app.state.store.connections_of_user("alice", "").await.unwrap().len(), 3, "nothing was deleted");
    let (ok, _, err) = cli.run(&["connections", "remove", "--provider", "acme", "--all", "--yes"]);
    assert!(!ok && err.contains("name what to remove"), "{err}");
    let (ok, out, err) = cli.run(&["connections", "remove", "--provider", "acme", "--yes"]);
    assert!(ok, "{err}");
    assert_eq!(out.lines().filter(|l| l.starts_with("deleted\t")).count(), 2, "{out}");
    let trail = app.activity(&format!("connection_id={}", one.id)).await;
    assert!(trail.iter().any(|e| e["action"] == "deleted" && e["actor"]["name"] == "cli"), "{trail:?}");
    let (ok, _, err) = cli.run(&["token", "get", "--user", "alice", "--provider", "plain"]);
    assert!(ok, "no orphans left: {err}");
    let (ok, _, err) = cli.run(&["connections", "remove", "conn_nope", "--yes"]);
    assert!(!ok && err.contains("connection_not_found"), "{err}");
    let (ok, _, _) = cli.run(&["connections", "remove", "--all", "--yes"]);
    assert!(ok);
    assert!(app.state.store.connections_of_user("alice", "").await.unwrap().is_empty());
});

both!(the_cli_follows_the_trail_as_it_grows, |backend| async move {
    use std::io::BufRead as _;
    let (app, _fake) = TestApp::with_fake(backend).await;
    let row = app.seed(Seed::default()).await;
    let set_purpose = |purpose: &'static str| {
        let (app, id) = (&app, row.id.clone());
        async move {
            let body = UpdateConnection { purpose: purpose.into() };
            assert_eq!(app.call::<UpdateConnectionEndpoint>(&[&id], Some(&body)).await.0, 200);
        }
    };
    set_purpose("Before").await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = crate::harness::latch_command(dir.path(), &app.db.url);
    cmd.args(["activity", "--connection", &row.id, "--follow", "--format", "json"]);
    let child = cmd.stdout(std::process::Stdio::piped()).spawn().unwrap();
    let mut child = crate::harness::KilledOnDrop(child);
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stdout = child.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next = |rx: &std::sync::mpsc::Receiver<String>| {
        let line = rx.recv_timeout(std::time::Duration::from_secs(10)).expect("a line within 10 s");
        serde_json::from_str::<Value>(&line).unwrap()
    };
    assert_eq!(next(&rx)["detail"], "Before", "what was there, one JSON entry a line");
    set_purpose("During one").await;
    set_purpose("During two").await;
    assert_eq!(next(&rx)["detail"], "During one", "new entries, oldest first");
    assert_eq!(next(&rx)["detail"], "During two");
    assert!(rx.recv_timeout(std::time::Duration::from_millis(2500)).is_err(), "each entry once");
});

both!(on_a_terminal_connections_remove_asks_first, |backend| async move {
    use std::io::Write as _;
    let (app, fake) = TestApp::with_fake(backend).await;
    let row = app.seed(Seed::default()).await;
    let cli = Cli::new(&app, &fake.url, &[("acme", READ_WRITE)]);
    // `script` (util-linux, in every Debian) runs the command on a pseudo-terminal and types
    // what we write to it.
    let answer = |typed: &str| {
        let inner = cli.command(&["connections", "remove", &row.id]);
        let line: Vec<String> = std::iter::once(inner.get_program().to_string_lossy().into_owned())
            .chain(inner.get_args().map(|a| a.to_string_lossy().into_owned()))
            .collect();
        let mut cmd = std::process::Command::new("/usr/bin/script");
        cmd.args(["-qec", &line.join(" "), "/dev/null"]).current_dir(inner.get_current_dir().unwrap()).env_clear();
        for (k, v) in inner.get_envs() {
            if let Some(v) = v {
                cmd.env(k, v);
            }
        }
        let mut child = cmd
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(typed.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (ok, shown) = answer("n\n");
    assert!(!ok && shown.contains("delete 1 connection(s)? [y/N]"), "{shown}");
    assert!(app.state.store.connection(&row.id).await.unwrap().is_some(), "no means no");
    let (ok, shown) = answer("y\n");
    assert!(ok && shown.contains(&format!("deleted\t{}", row.id)), "{shown}");
    assert!(app.state.store.connection(&row.id).await.unwrap().is_none());
});

both!(a_connection_removed_by_the_cli_stops_being_served_at_once, |backend| async move {
    let (app, fake) = TestApp::with_fake(backend).await;
    let row = app.seed(Seed::default()).await;
    let ask = json!({"user_id": "alice", "provider": "acme"});
    assert_eq!(app.post("/v1/access-token", ask.clone()).await.1["active"], true);
    assert_eq!(app.post("/v1/access-token", ask.clone()).await.1["active"], true, "served from the cache");
    // Another process (the CLI) deletes it: the server hears of it through NOTIFY (PostgreSQL)
    // or its poll of the change log (SQLite), not after its cache's five-minute TTL.
    let cli = Cli::new(&app, &fake.url, &[]);
    let (ok, _, err) = cli.run(&["connections", "remove", &row.id, "--yes"]);
    assert!(ok, "{err}");
    let started = std::time::Instant::now();
    let gone = || async { app.post("/v1/access-token", ask.clone()).await.1["error"] == "not_installed" };
    assert!(crate::harness::wait_until(std::time::Duration::from_secs(5), gone).await);
    eprintln!("governance: a CLI removal reached the server in {:?}", started.elapsed());
    assert!(started.elapsed() < std::time::Duration::from_millis(500), "served for {:?}", started.elapsed());
});
