//! The ledger as a transparency log, through HTTP, the CLI and plain SQL: the Merkle tree kept
//! with every append, signed checkpoints and the key to pin, inclusion and consistency proofs
//! verified the way an auditor would, the offline bundle check (in Rust and in the README's
//! Python), and the three tamperings a held checkpoint catches.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

mod common;

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::TestApp;
use ihf::db::Backend;
use ihf::db::candidates;
use ihf::db::ledger::{self, LedgerEntry, NewEntry};
use ihf::transparency::merkle::{self, Hash};
use ihf::transparency::note::{Checkpoint, VerifierKey};

// ---- helpers ----------------------------------------------------------------------------------

struct Demo {
    logins: HashMap<String, String>,
    checkout: i64,
}

async fn demo(app: &TestApp) -> Demo {
    let logins = app.seed_demo().await;
    Demo { logins, checkout: app.scalar("SELECT id FROM hubs WHERE slug = 'checkout'").await }
}

impl Demo {
    async fn client(&self, app: &TestApp, handle: &str) -> reqwest::Client {
        app.signed_in(handle, &self.logins[handle]).await
    }
}

async fn count(app: &TestApp, sql: &str, hub: i64) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).bind(hub).fetch_one(app.db.reader()).await.expect(sql)
}

async fn entries(app: &TestApp, hub: i64) -> i64 {
    count(app, "SELECT COUNT(*) FROM ledger_entries WHERE hub_id = $1", hub).await
}

/// A new candidate in `hub` (one `proposed` entry), straight through the store.
async fn propose(app: &TestApp, hub: i64, title: &str) {
    let tomas = ihf::db::actors::by_handle(&app.db, "tomas").await.expect("tomas").id;
    let mut tx = app.db.writer().begin().await.expect("begin");
    candidates::propose(&mut tx, hub, tomas, title, "Because customers asked.", &[]).await.expect("propose");
    tx.commit().await.expect("commit");
}

async fn get_text(app: &TestApp, client: &reqwest::Client, path: &str) -> (u16, String) {
    let response = client.get(app.url(path)).send().await.expect("GET");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

async fn get_json(app: &TestApp, client: &reqwest::Client, path: &str) -> serde_json::Value {
    let (status, body) = get_text(app, client, path).await;
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).expect("JSON")
}

fn hash(value: &serde_json::Value) -> Hash {
    let bytes = BASE64.decode(value.as_str().expect("a base64 string")).expect("base64");
    bytes.try_into().expect("32 bytes")
}

fn hashes(value: &serde_json::Value) -> Vec<Hash> {
    value.as_array().expect("an array").iter().map(hash).collect()
}

/// The hub's key, as an auditor pins it.
async fn pinned_key(app: &TestApp, client: &reqwest::Client) -> VerifierKey {
    let (status, key) = get_text(app, client, "/hubs/checkout/ledger/key").await;
    assert_eq!(status, 200);
    key.trim().parse().expect("a verifier key")
}

/// The newest checkpoint, as an auditor keeps it, and what it says.
async fn held_checkpoint(app: &TestApp, client: &reqwest::Client, key: &VerifierKey) -> (String, Checkpoint) {
    let (status, note) = get_text(app, client, "/hubs/checkout/ledger/checkpoint").await;
    assert_eq!(status, 200, "{note}");
    let checkpoint = Checkpoint::open(&note, key).expect("the checkpoint verifies with the pinned key");
    (note, checkpoint)
}

/// Checks an inclusion proof answer as an auditor would: the leaf recomputed from the entry it
/// returns, the path up to the root of a checkpoint the auditor holds.
fn check_inclusion(answer: &serde_json::Value, held_root: &Hash) -> Result<(), String> {
    let entry: LedgerEntry = serde_json::from_value(answer["entry"].clone()).map_err(|e| e.to_string())?;
    let leaf = merkle::leaf_hash(&entry.canonical());
    let (index, size) = (answer["leaf_index"].as_u64().unwrap_or(u64::MAX), answer["tree_size"].as_u64().unwrap_or(0));
    merkle::verify_inclusion(index, size, &leaf, &hashes(&answer["proof"]), held_root).map_err(|e| e.to_string())
}

/// `ihf ledger prove …`'s JSON (standard output only: a slow-query warning may go to stderr).
fn cli_json(app: &TestApp, args: &[&str]) -> serde_json::Value {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ihf"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("DATABASE_URL", &app.database_url)
        .env("IHF_LOG", "warn")
        .output()
        .expect("run ihf");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("JSON")
}

fn cli(app: &TestApp, args: &[&str]) -> (i32, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ihf"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("DATABASE_URL", &app.database_url)
        .env("IHF_LOG", "warn")
        .output()
        .expect("run ihf");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.code().unwrap_or(-1), text)
}

fn temp_file(name: &str, contents: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ihf-transparency-{}-{}", std::process::id(), rand::random::<u32>()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write");
    path
}

/// Turns off the append-only triggers of the ledger, its tree and its checkpoints, as someone
/// with full control of the database can.
async fn drop_append_only(app: &TestApp) {
    let statements: &[&str] = match app.backend {
        Backend::Sqlite => &[
            "DROP TRIGGER ledger_entries_no_update",
            "DROP TRIGGER ledger_entries_no_delete",
            "DROP TRIGGER ledger_tree_nodes_no_update",
            "DROP TRIGGER ledger_tree_nodes_no_delete",
            "DROP TRIGGER ledger_checkpoints_no_update",
            "DROP TRIGGER ledger_checkpoints_no_delete",
        ],
        Backend::Postgres => &[
            "ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_no_update",
            "ALTER TABLE ledger_tree_nodes DISABLE TRIGGER ledger_tree_nodes_no_update",
            "ALTER TABLE ledger_checkpoints DISABLE TRIGGER ledger_checkpoints_no_update",
        ],
    };
    for sql in statements {
        sqlx::query(sqlx::AssertSqlSafe(*sql)).execute(app.db.writer()).await.expect(sql);
    }
}

/// Removes entries `from..` of a hub with their leaves, the tree nodes above them and the
/// checkpoints that covered them: the log as it was after `from - 1` entries.
async fn cut_back(app: &TestApp, hub: i64, from: i64) {
    let first_leaf = from - 1;
    for level in 0..32_i64 {
        sqlx::query("DELETE FROM ledger_tree_nodes WHERE hub_id = $1 AND level = $2 AND idx >= $3")
            .bind(hub)
            .bind(level)
            .bind(first_leaf >> level)
            .execute(app.db.writer())
            .await
            .expect("delete nodes");
    }
    sqlx::query("DELETE FROM ledger_checkpoints WHERE hub_id = $1 AND tree_size >= $2")
        .bind(hub)
        .bind(from)
        .execute(app.db.writer())
        .await
        .expect("delete checkpoints");
    sqlx::query("DELETE FROM ledger_entries WHERE hub_id = $1 AND seq >= $2")
        .bind(hub)
        .bind(from)
        .execute(app.db.writer())
        .await
        .expect("delete entries");
}

/// Appends an entry with this rationale through the store (chain, tree and checkpoint).
async fn append(app: &TestApp, hub: i64, rationale: &str) -> LedgerEntry {
    let olga = ihf::db::actors::by_handle(&app.db, "olga").await.expect("olga").id;
    let mut tx = app.db.writer().begin().await.expect("begin");
    let entry =
        NewEntry { hub_id: hub, candidate_id: None, actor_id: olga, action: "edited", rationale, detail: "{}".into() };
    let stored = ledger::append(&mut tx, &entry).await.expect("append");
    tx.commit().await.expect("commit");
    stored
}

// ---- the tree and its checkpoints -------------------------------------------------------------

dual_test!(every_append_extends_the_tree_and_signs_a_checkpoint, |app| {
    let demo = demo(&app).await;
    let olga = demo.client(&app, "olga").await;
    let key = pinned_key(&app, &olga).await;
    assert!(key.name.ends_with("/checkout"), "the key name is the origin: {}", key.name);

    let n = entries(&app, demo.checkout).await;
    assert!(n > 3, "the demo writes ledger entries");
    let leaves =
        count(&app, "SELECT COUNT(*) FROM ledger_tree_nodes WHERE hub_id = $1 AND level = 0", demo.checkout).await;
    let checkpoints = count(&app, "SELECT COUNT(*) FROM ledger_checkpoints WHERE hub_id = $1", demo.checkout).await;
    assert_eq!((leaves, checkpoints), (n, n), "one leaf and one checkpoint per entry");

    // The checkpoint's root is the RFC 9162 root of the exported entries.
    let (_, checkpoint) = held_checkpoint(&app, &olga, &key).await;
    let export = get_text(&app, &olga, "/hubs/checkout/ledger.jsonl").await.1;
    let leaves: Vec<Hash> =
        export.lines().map(|line| serde_json::from_str::<LedgerEntry>(line).expect("entry").leaf_hash()).collect();
    assert_eq!(checkpoint.size, n as u64);
    assert_eq!(checkpoint.origin, key.name);
    assert_eq!(checkpoint.root, merkle::root_of(&leaves));

    // A write that rolls back leaves no leaf and no checkpoint behind.
    {
        let tomas = ihf::db::actors::by_handle(&app.db, "tomas").await.expect("tomas").id;
        let mut tx = app.db.writer().begin().await.expect("begin");
        candidates::propose(&mut tx, demo.checkout, tomas, "Rolled back", "s", &[]).await.expect("propose");
        // dropped: rolled back
    }
    assert_eq!(count(&app, "SELECT COUNT(*) FROM ledger_checkpoints WHERE hub_id = $1", demo.checkout).await, n);
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM ledger_tree_nodes WHERE hub_id = $1 AND level = 0", demo.checkout).await,
        n
    );

    // Concurrent appends to one hub queue up and keep the tree whole.
    let mut tasks = Vec::new();
    let tomas = ihf::db::actors::by_handle(&app.db, "tomas").await.expect("tomas").id;
    for i in 0..12 {
        let (db, hub) = (app.db.clone(), demo.checkout);
        tasks.push(tokio::spawn(async move {
            let mut tx = db.writer().begin().await.expect("begin");
            candidates::propose(&mut tx, hub, tomas, &format!("Concurrent {i}"), "s", &[]).await.expect("propose");
            tx.commit().await.expect("commit");
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    let (_, after) = held_checkpoint(&app, &olga, &key).await;
    assert_eq!(after.size, n as u64 + 12);
    let report = ledger::verify_all(&app.db, Some("checkout")).await.expect("verify");
    assert!(report.ok, "{:?}", report.lines);
    assert!(
        report.lines[0].contains(&format!(
            "{} entries checked, ok (Merkle tree and {} signed checkpoints match)",
            n + 12,
            n + 12
        )),
        "{:?}",
        report.lines
    );

    // The page's verdict comes from the newest checkpoint.
    let (_, page) = get_text(&app, &olga, "/hubs/checkout/ledger").await;
    assert!(
        page.contains("verdict-ok") && page.contains(&format!("Checkpoint verified: {} entries", n + 12)),
        "{page}"
    );
    assert!(page.contains(&format!("data-root=\"{}\"", after.root_base64())));
});

// ---- proofs -----------------------------------------------------------------------------------

dual_test!(proofs_over_http_and_the_cli_verify_against_held_checkpoints, |app| {
    let demo = demo(&app).await;
    for i in 0..6 {
        propose(&app, demo.checkout, &format!("Proof material {i}")).await;
    }
    let anna = demo.client(&app, "anna").await; // an annotator: a member who only reads
    let key = pinned_key(&app, &anna).await;
    let (_, head) = held_checkpoint(&app, &anna, &key).await;
    let n = head.size;
    let bits = 64 - n.leading_zeros() as usize;

    // Every entry against the newest checkpoint, and against an older size.
    let old_size = n / 2;
    let old_root: Hash = {
        let answer =
            get_json(&app, &anna, &format!("/hubs/checkout/ledger/proof/consistency?from={old_size}&to={n}")).await;
        let (old, new, proof) = (hash(&answer["old_root"]), hash(&answer["new_root"]), hashes(&answer["proof"]));
        assert_eq!(new, head.root);
        merkle::verify_consistency(old_size, n, &proof, &old, &head.root).expect("consistent");
        assert!(answer["old_checkpoint"].as_str().is_some_and(|c| c.contains(&format!("\n{old_size}\n"))));
        old
    };
    for seq in 1..=n {
        let answer = get_json(&app, &anna, &format!("/hubs/checkout/ledger/proof/inclusion?seq={seq}")).await;
        assert_eq!(answer["tree_size"], n);
        assert!(answer["proof"].as_array().expect("proof").len() <= bits, "about log2(n) hashes");
        check_inclusion(&answer, &head.root).unwrap_or_else(|e| panic!("entry #{seq}: {e}"));
        if seq <= old_size {
            let path = format!("/hubs/checkout/ledger/proof/inclusion?seq={seq}&size={old_size}");
            let answer = get_json(&app, &anna, &path).await;
            check_inclusion(&answer, &old_root).unwrap_or_else(|e| panic!("entry #{seq} at {old_size}: {e}"));
            // The same proof does not verify against another root.
            assert!(check_inclusion(&answer, &head.root).is_err());
        }
    }
    // Every pair of sizes is consistent.
    for from in 1..=n {
        let answer = get_json(&app, &anna, &format!("/hubs/checkout/ledger/proof/consistency?from={from}")).await;
        let (old, proof) = (hash(&answer["old_root"]), hashes(&answer["proof"]));
        merkle::verify_consistency(from, n, &proof, &old, &head.root).unwrap_or_else(|e| panic!("{from} -> {n}: {e}"));
        let old_note = answer["old_checkpoint"].as_str().expect("the checkpoint of that size");
        assert_eq!(
            Checkpoint::open(old_note, &key).expect("signed").root,
            old,
            "the proof's old root is the signed one"
        );
    }

    // Mistakes are clear 400s; strangers get nothing.
    for (path, words) in [
        ("/hubs/checkout/ledger/proof/inclusion?seq=0", "no entry #0".to_owned()),
        (&*format!("/hubs/checkout/ledger/proof/inclusion?seq={}", n + 1), format!("no entry #{}", n + 1)),
        (&*format!("/hubs/checkout/ledger/proof/inclusion?seq=1&size={}", n + 1), format!("{n} signed entries")),
        (&*format!("/hubs/checkout/ledger/proof/consistency?from={}", n + 1), "cannot be a prefix".to_owned()),
        ("/hubs/checkout/ledger/proof/inclusion?seq=x", "invalid digit".to_owned()),
    ] {
        let (status, body) = get_text(&app, &anna, path).await;
        assert_eq!(status, 400, "{path}");
        assert!(body.contains(&words), "{path}: {body}");
    }
    for path in ["/hubs/checkout/ledger/proof/inclusion?seq=1", "/hubs/checkout/ledger/bundle"] {
        assert_eq!(get_text(&app, &app.new_client(), path).await.0, 401, "{path}");
        let tara = demo.client(&app, "tara").await; // triager of onboarding only
        assert_eq!(get_text(&app, &tara, path).await.0, 403, "{path}");
    }
    // The public key is published: anyone, signed in or not, may fetch and pin it.
    let pinned = pinned_key(&app, &anna).await.encode();
    for client in [app.new_client(), demo.client(&app, "tara").await] {
        let (status, body) = get_text(&app, &client, "/hubs/checkout/ledger/key").await;
        assert_eq!((status, body.trim()), (200, pinned.as_str()), "the key is public");
    }
    assert_eq!(get_text(&app, &app.new_client(), "/hubs/no-such-hub/ledger/key").await.0, 404);

    // The CLI gives the same proofs.
    let by_cli = cli_json(&app, &["ledger", "prove", "inclusion", "--hub", "checkout", "--seq", "3"]);
    let by_http = get_json(&app, &anna, "/hubs/checkout/ledger/proof/inclusion?seq=3").await;
    assert_eq!(by_cli["proof"], by_http["proof"]);
    assert_eq!(by_cli["root_hash"], by_http["root_hash"]);
    let by_cli = cli_json(&app, &["ledger", "prove", "consistency", "--hub", "checkout", "--from", "2", "--to", "5"]);
    assert_eq!(
        by_cli["proof"],
        get_json(&app, &anna, "/hubs/checkout/ledger/proof/consistency?from=2&to=5").await["proof"]
    );
    let (code, out) = cli(&app, &["ledger", "prove", "inclusion", "--hub", "checkout", "--seq", "999"]);
    assert_ne!(code, 0);
    assert!(out.contains("no entry #999"), "{out}");
    let (code, out) = cli(&app, &["ledger", "key", "--hub", "checkout"]);
    assert_eq!((code, out.trim()), (0, key.encode().as_str()));
});

// ---- tampering --------------------------------------------------------------------------------

dual_test!(an_entry_edited_in_place_fails_its_inclusion_proof, |app| {
    let demo = demo(&app).await;
    let olga = demo.client(&app, "olga").await;
    let key = pinned_key(&app, &olga).await;
    let (_, held) = held_checkpoint(&app, &olga, &key).await;
    let k = 3;
    let path = format!("/hubs/checkout/ledger/proof/inclusion?seq={k}&size={}", held.size);
    check_inclusion(&get_json(&app, &olga, &path).await, &held.root).expect("intact");

    drop_append_only(&app).await;
    sqlx::query(
        "UPDATE ledger_entries SET rationale = rationale || ' (quietly amended)' WHERE hub_id = $1 AND seq = $2",
    )
    .bind(demo.checkout)
    .bind(k)
    .execute(app.db.writer())
    .await
    .expect("tamper");
    let answer = get_json(&app, &olga, &path).await;
    assert!(answer["entry"]["rationale"].as_str().unwrap_or_default().ends_with("(quietly amended)"));
    let failure = check_inclusion(&answer, &held.root).expect_err("the edited entry is not in the held tree");
    assert!(failure.contains("root"), "{failure}");
    // Even with its hash recomputed, the leaf is not the one the checkpoint signed.
    let entry: LedgerEntry = serde_json::from_value(answer["entry"].clone()).expect("entry");
    sqlx::query("UPDATE ledger_entries SET hash = $1 WHERE hub_id = $2 AND seq = $3")
        .bind(entry.expected_hash())
        .bind(demo.checkout)
        .bind(k)
        .execute(app.db.writer())
        .await
        .expect("rehash");
    assert!(check_inclusion(&get_json(&app, &olga, &path).await, &held.root).is_err());
    let report = ledger::verify_all(&app.db, Some("checkout")).await.expect("verify");
    assert!(!report.ok);
    assert!(report.lines[0].contains(&format!("broken at entry #{k}")), "{:?}", report.lines);
    // Other entries still prove against the held checkpoint.
    let path = format!("/hubs/checkout/ledger/proof/inclusion?seq=1&size={}", held.size);
    check_inclusion(&get_json(&app, &olga, &path).await, &held.root).expect("entry #1 intact");

    // The page's own check covers the newest entry.
    let n = held.size as i64;
    sqlx::query("UPDATE ledger_entries SET rationale = 'rewritten' WHERE hub_id = $1 AND seq = $2")
        .bind(demo.checkout)
        .bind(n)
        .execute(app.db.writer())
        .await
        .expect("tamper the head");
    let (_, page) = get_text(&app, &olga, "/hubs/checkout/ledger").await;
    assert!(page.contains("verdict-broken") && page.contains(&format!("entry #{n} does not match its hash")), "{page}");
});

dual_test!(a_chain_rewritten_from_entry_k_is_inconsistent_with_a_held_checkpoint, |app| {
    let demo = demo(&app).await;
    let olga = demo.client(&app, "olga").await;
    let key = pinned_key(&app, &olga).await;
    let k: i64 = 4;
    // An auditor kept a checkpoint of the first k - 1 entries and one of the whole ledger.
    let early_size = (k - 1) as u64;
    let early_note = get_json(&app, &olga, &format!("/hubs/checkout/ledger/proof/consistency?from={early_size}")).await
        ["old_checkpoint"]
        .as_str()
        .expect("the early checkpoint")
        .to_owned();
    let (held_note, held) = held_checkpoint(&app, &olga, &key).await;
    assert!(held.size > k as u64);

    // Someone with the database (and so the signing key) rewrites history from entry k and
    // recomputes every hash, every tree node and every checkpoint after it.
    drop_append_only(&app).await;
    cut_back(&app, demo.checkout, k).await;
    for i in 0..held.size as i64 - k + 2 {
        append(&app, demo.checkout, &format!("a different history, step {i}")).await;
    }
    let report = ledger::verify_all(&app.db, Some("checkout")).await.expect("verify");
    assert!(report.ok, "on its own the rewritten log verifies: {:?}", report.lines);
    let (_, now) = held_checkpoint(&app, &olga, &key).await;
    assert_eq!(now.size, held.size + 1);

    // The consistency proof from the held checkpoint does not lead to its root.
    let answer = get_json(&app, &olga, &format!("/hubs/checkout/ledger/proof/consistency?from={}", held.size)).await;
    let proof = hashes(&answer["proof"]);
    assert!(merkle::verify_consistency(held.size, now.size, &proof, &held.root, &now.root).is_err());
    // (The server's own old root for that size is not the one the auditor holds.)
    assert_ne!(hash(&answer["old_root"]), held.root);
    // The early checkpoint, from before entry k, is still consistent: entries before k are intact.
    let early = Checkpoint::open(&early_note, &key).expect("early");
    let answer = get_json(&app, &olga, &format!("/hubs/checkout/ledger/proof/consistency?from={early_size}")).await;
    merkle::verify_consistency(early_size, now.size, &hashes(&answer["proof"]), &early.root, &now.root)
        .expect("the untouched prefix is consistent");

    // The offline check says the same.
    let (_, bundle) = get_text(&app, &olga, "/hubs/checkout/ledger/bundle").await;
    let bundle_file = temp_file("bundle.jsonl", &bundle);
    let held_file = temp_file("held.txt", &held_note);
    let early_file = temp_file("early.txt", &early_note);
    let key_text = key.encode();
    let bundle_path = bundle_file.to_string_lossy().into_owned();
    let (code, out) = cli(
        &app,
        &["ledger", "verify-bundle", &bundle_path, "--key", &key_text, "--checkpoint", &held_file.to_string_lossy()],
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("kept checkpoint: INCONSISTENT") && out.contains("the history was rewritten"), "{out}");
    let (code, out) = cli(
        &app,
        &["ledger", "verify-bundle", &bundle_path, "--key", &key_text, "--checkpoint", &early_file.to_string_lossy()],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("kept checkpoint: consistent, the bundle's first {early_size} entries")), "{out}");
});

dual_test!(dropping_the_newest_entries_is_caught, |app| {
    let demo = demo(&app).await;
    let olga = demo.client(&app, "olga").await;
    let key = pinned_key(&app, &olga).await;
    let (held_note, held) = held_checkpoint(&app, &olga, &key).await;
    let n = held.size as i64;
    drop_append_only(&app).await;

    // The newest two entries vanish; their checkpoints stay: the log itself says so.
    sqlx::query("DELETE FROM ledger_entries WHERE hub_id = $1 AND seq > $2")
        .bind(demo.checkout)
        .bind(n - 2)
        .execute(app.db.writer())
        .await
        .expect("drop");
    let (_, page) = get_text(&app, &olga, "/hubs/checkout/ledger").await;
    assert!(page.contains("verdict-broken") && page.contains("entries were removed"), "{page}");
    let report = ledger::verify_all(&app.db, Some("checkout")).await.expect("verify");
    assert!(!report.ok && report.lines[0].contains("entries were removed"), "{:?}", report.lines);

    // A thorough job removes their tree nodes and checkpoints too: the log looks whole again,
    // but not to someone holding the newer checkpoint.
    cut_back(&app, demo.checkout, n - 1).await;
    let report = ledger::verify_all(&app.db, Some("checkout")).await.expect("verify");
    assert!(report.ok, "{:?}", report.lines);
    let (_, page) = get_text(&app, &olga, "/hubs/checkout/ledger").await;
    assert!(page.contains("verdict-ok"), "{page}");
    let (status, body) = get_text(&app, &olga, &format!("/hubs/checkout/ledger/proof/consistency?from={n}")).await;
    assert_eq!(status, 400);
    assert!(body.contains("cannot be a prefix") && body.contains(&format!("has {} signed entries", n - 2)), "{body}");
    let (_, bundle) = get_text(&app, &olga, "/hubs/checkout/ledger/bundle").await;
    let bundle_file = temp_file("bundle.jsonl", &bundle);
    let held_file = temp_file("held.txt", &held_note);
    let (code, out) = cli(
        &app,
        &[
            "ledger",
            "verify-bundle",
            &bundle_file.to_string_lossy(),
            "--key",
            &key.encode(),
            "--checkpoint",
            &held_file.to_string_lossy(),
        ],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("INCONSISTENT, it covers {n} entries but the bundle has only {}", n - 2))
            && out.contains("entries were removed"),
        "{out}"
    );
});

// ---- the bundle -------------------------------------------------------------------------------

/// The README's Python check, as the README shows it.
fn readme_python() -> String {
    let readme = include_str!("../README.md");
    let start = readme.find("<!-- audit-bundle.py -->").expect("the README's Python bundle check");
    let code = &readme[start..];
    let code = &code[code.find("```python\n").expect("a python block") + 10..];
    code[..code.find("```").expect("end of block")].to_owned()
}

fn python_available() -> bool {
    std::process::Command::new("python3").args(["-c", "import cryptography"]).status().is_ok_and(|s| s.success())
}

fn run_python(script: &std::path::Path, args: &[&str]) -> (i32, String) {
    let output = std::process::Command::new("python3").arg(script).args(args).output().expect("python3");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.code().unwrap_or(-1), text)
}

dual_test!(the_bundle_verifies_offline_in_rust_and_in_the_readme_python, |app| {
    let demo = demo(&app).await;
    let olga = demo.client(&app, "olga").await;
    let key = pinned_key(&app, &olga).await;
    let (old_note, old) = held_checkpoint(&app, &olga, &key).await;
    // Text that exercises the canonical form's escaping.
    append(&app, demo.checkout, "Quotes \"here\", C:\\path\r\nand\ttabs \u{1} – déjà vu ✓").await;
    let response = olga.get(app.url("/hubs/checkout/ledger/bundle")).send().await.expect("bundle");
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-disposition"].to_str().unwrap_or_default().contains("checkout-ledger-bundle"));
    let bundle = response.text().await.expect("body");
    assert_eq!(bundle.lines().count() as u64, old.size + 2, "a header and every entry");
    let bundle_file = temp_file("bundle.jsonl", &bundle);
    let bundle_path = bundle_file.to_string_lossy().into_owned();
    let old_file = temp_file("old.txt", &old_note);
    let old_path = old_file.to_string_lossy().into_owned();
    let key_file = temp_file("key.txt", &format!("{}\n", key.encode()));

    // With the pinned key (as text or a file) and an older checkpoint: all good.
    let (code, out) = cli(
        &app,
        &["ledger", "verify-bundle", &bundle_path, "--key", &key_file.to_string_lossy(), "--checkpoint", &old_path],
    );
    assert_eq!(code, 0, "{out}");
    for words in [
        &*format!("checkpoint: {} entries", old.size + 1),
        "verifies with the key you pinned",
        &*format!("chain: {} entries checked, ok", old.size + 1),
        "tree: the entries' Merkle root is the signed root",
        &*format!("kept checkpoint: consistent, the bundle's first {} entries", old.size),
    ] {
        assert!(out.contains(words), "{words}: {out}");
    }
    assert!(out.trim_end().ends_with("ok"), "{out}");
    // Without a key it says what that proves; with another key it refuses.
    let (code, out) = cli(&app, &["ledger", "verify-bundle", &bundle_path]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("the key in the bundle (pass --key to pin yours)"), "{out}");
    let stranger = ihf::transparency::note::NoteSigner::new(&key.name, &[42; 32]).expect("signer").vkey();
    let (code, out) = cli(&app, &["ledger", "verify-bundle", &bundle_path, "--key", &stranger]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("checkpoint: REFUSED"), "{out}");
    // A bundle edited after export fails.
    let forged = bundle.replacen("\"rationale\":\"", "\"rationale\":\"not ", 1);
    let forged_file = temp_file("forged.jsonl", &forged);
    let forged_path = forged_file.to_string_lossy().into_owned();
    let (code, out) = cli(&app, &["ledger", "verify-bundle", &forged_path, "--key", &key.encode()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("chain: broken at entry #1"), "{out}");

    // The README's few lines of Python agree, on the same files.
    if python_available() {
        let script = temp_file("audit_bundle.py", &readme_python());
        let (code, out) = run_python(&script, &[&bundle_path, &key.encode(), &old_path]);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains(&format!("{} entries, checkpoint verified", old.size + 1)), "{out}");
        assert!(out.contains(&format!("consistent with the kept checkpoint of {}", old.size)), "{out}");
        let (code, out) = run_python(&script, &[&forged_path, &key.encode()]);
        assert_ne!(code, 0, "a forged bundle fails in Python too: {out}");
        let (code, out) = run_python(&script, &[&bundle_path, &stranger]);
        assert_ne!(code, 0, "another key fails in Python too: {out}");
    } else {
        eprintln!("SKIPPED the README's Python check: python3 with the cryptography package is not installed");
    }
});

// ---- the key and older databases ----------------------------------------------------------------

mod key_and_backfill {
    use super::*;

    async fn run(backend: Backend) {
        let url = common::fresh_database_url(backend).await;
        let app = common::spawn_on(url.clone(), backend, |c| c.ledger_name = Some("feedback.example.com".into())).await;
        let demo = demo(&app).await;
        let olga = demo.client(&app, "olga").await;
        let key = pinned_key(&app, &olga).await;
        assert!(key.encode().starts_with("feedback.example.com/checkout+"), "{}", key.encode());

        // Entries written without the tree (as before this migration) get their tree and a
        // checkpoint on the next start.
        let olga_id = ihf::db::actors::by_handle(&app.db, "olga").await.expect("olga").id;
        for i in 0..5 {
            let mut tx = app.db.writer().begin().await.expect("begin");
            let rationale = format!("written by an older version {i}");
            let entry = NewEntry {
                hub_id: demo.checkout,
                candidate_id: None,
                actor_id: olga_id,
                action: "edited",
                rationale: &rationale,
                detail: "{}".into(),
            };
            ledger::append_chain_only(&mut tx, &entry).await.expect("append");
            tx.commit().await.expect("commit");
        }
        let report = ledger::verify_all(&app.db, Some("checkout")).await.expect("verify");
        assert!(!report.ok && report.lines[0].contains("missing from the Merkle tree"), "{:?}", report.lines);
        let (code, out) = cli(&app, &["ledger", "verify", "--hub", "checkout"]);
        assert_eq!(code, 1, "{out}");
        app.handle.stop(true).await;

        // `ihf migrate` builds the missing tree (not only the next `serve`): verify passes after it.
        let (code, out) = cli(&app, &["migrate"]);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("5 entries added to the Merkle trees"), "{out}");
        let (code, out) = cli(&app, &["ledger", "verify", "--hub", "checkout"]);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("ok (Merkle tree and"), "{out}");
        let (code, out) = cli(&app, &["migrate"]);
        assert!(code == 0 && !out.contains("added to the Merkle trees"), "a second migrate has nothing to add: {out}");

        // Restarted with another name: the key and the origin stay.
        let app = common::spawn_on(url, backend, |c| c.ledger_name = Some("elsewhere.example".into())).await;
        let olga = app.signed_in("olga", &demo.logins["olga"]).await;
        assert_eq!(pinned_key(&app, &olga).await, key, "the key survives restarts");
        let report = ledger::verify_all(&app.db, Some("checkout")).await.expect("verify");
        assert!(report.ok, "{:?}", report.lines);
        let (_, checkpoint) = held_checkpoint(&app, &olga, &key).await;
        assert_eq!(checkpoint.size, entries(&app, demo.checkout).await as u64);
    }

    dual_run!();
}
