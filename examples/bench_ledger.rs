//! Ledger benchmark (`just bench-ledger`): appending to one hub's ledger with and without the
//! Merkle tree and signed checkpoint, then, at N entries (default 1,000,000), inclusion and
//! consistency proofs (time and size), the ledger page's render time next to a hub of ten
//! entries, and the full `ihf ledger verify` walk. SQLite, the shipped default settings, the
//! release server in this process; prints a Markdown table for BENCHMARKS.md.
//!
//! `cargo run --release --example bench_ledger [-- N [MAX_FILL_SECONDS]]` (default 1,000,000
//! entries, filling stops after 480 s and reports the size reached).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

use std::time::{Duration, Instant};

use clap::Parser;
use ihf::db::ledger::{self, NewEntry};
use ihf::db::{Db, actors, hubs, ledger_tree};
use ihf::transparency::merkle;

/// Appends measured one transaction each, as the web UI makes them.
const SAMPLE: usize = 20_000;
/// Appends per transaction while filling the ledger up to N (the same append, fewer commits).
const FILL_BATCH: usize = 1_000;
const PROOFS: usize = 2_000;
const PAGE_LOADS: usize = 100;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn summary(mut times: Vec<Duration>) -> String {
    times.sort();
    let mean = times.iter().sum::<Duration>() / times.len() as u32;
    format!(
        "mean {:.3} ms, p50 {:.3} ms, p99 {:.3} ms",
        ms(mean),
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99))
    )
}

async fn append_one(db: &Db, hub: i64, actor: i64, i: usize, with_tree: bool) -> anyhow::Result<()> {
    let mut tx = db.writer().begin().await?;
    let rationale = format!("decision {i}: keep the checkout flow on one page");
    let entry = NewEntry {
        hub_id: hub,
        candidate_id: None,
        actor_id: actor,
        action: "edited",
        rationale: &rationale,
        detail: format!("{{\"n\":{i}}}"),
    };
    if with_tree {
        ledger::append(&mut tx, &entry).await?;
    } else {
        ledger::append_chain_only(&mut tx, &entry).await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn rate(db: &Db, hub: i64, actor: i64, with_tree: bool) -> anyhow::Result<f64> {
    let started = Instant::now();
    for i in 0..SAMPLE {
        append_one(db, hub, actor, i, with_tree).await?;
    }
    Ok(SAMPLE as f64 / started.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let target: usize = args.get(1).map(|a| a.parse()).transpose()?.unwrap_or(1_000_000);
    let max_fill = Duration::from_secs(args.get(2).map(|a| a.parse()).transpose()?.unwrap_or(480));
    let dir = std::env::temp_dir().join(format!("ihf-bench-ledger-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let db_path = dir.join("ledger.db");
    // The shipped defaults, with a fresh database and a free port.
    let mut config = ihf::cli::Cli::parse_from(["ihf"]).config;
    config.database_url = format!("sqlite://{}", db_path.display());
    config.bind = "127.0.0.1:0".parse()?;
    config.seed_demo = Some(false);
    config.log_level = "warn".into();
    let app = ihf::Application::build(config).await?;
    let db = app.db().clone();
    let address = format!("http://127.0.0.1:{}", app.port());
    let stopper = app.handle();
    tokio::spawn(app.run_until_stopped());

    let big = hubs::create(&db, "bench", "Benchmark hub", "").await?;
    let small = hubs::create(&db, "small", "Ten entries", "").await?;
    let chain = hubs::create(&db, "chain", "Chain only", "").await?;
    let hash = ihf::auth::password::hash("bench password").map_err(|e| anyhow::anyhow!("hashing: {e}"))?;
    let auditor = actors::create_person(&db, "auditor", "Audrey Auditor", Some(&hash), false).await?;
    for hub in [&big, &small, &chain] {
        actors::grant(&db, hub.id, auditor, "operator").await?;
    }

    // 1. Appends, one transaction each: the chain alone, then chain + tree + signed checkpoint.
    let chain_rate = rate(&db, chain.id, auditor, false).await?;
    let tree_rate = rate(&db, big.id, auditor, true).await?;
    println!("append, one per transaction: {chain_rate:.0}/s without the tree, {tree_rate:.0}/s with it");

    // 2. Fill to N.
    let fill_started = Instant::now();
    let mut size = SAMPLE;
    while size < target && fill_started.elapsed() < max_fill {
        let mut tx = db.writer().begin().await?;
        for i in size..(size + FILL_BATCH).min(target) {
            let rationale = format!("decision {i}: keep the checkout flow on one page");
            let entry = NewEntry {
                hub_id: big.id,
                candidate_id: None,
                actor_id: auditor,
                action: "edited",
                rationale: &rationale,
                detail: format!("{{\"n\":{i}}}"),
            };
            ledger::append(&mut tx, &entry).await?;
        }
        tx.commit().await?;
        size = (size + FILL_BATCH).min(target);
        if size.is_multiple_of(100_000) {
            println!("  {size} entries, {:.0} s", fill_started.elapsed().as_secs_f64());
        }
    }
    let fill_rate = (size - SAMPLE) as f64 / fill_started.elapsed().as_secs_f64();
    println!("filled to {size} entries at {fill_rate:.0}/s ({FILL_BATCH} appends per transaction)");
    for i in 0..10 {
        append_one(&db, small.id, auditor, i, true).await?;
    }
    let n = size as u64;
    let head =
        ledger_tree::latest_checkpoint(db.reader(), big.id).await?.ok_or_else(|| anyhow::anyhow!("no checkpoint"))?;
    anyhow::ensure!(head.tree_size as u64 == n, "the checkpoint covers {} of {n}", head.tree_size);
    let root = head.root();

    // 3. Proofs at N, straight from the store (what the handler calls), each verified.
    let (mut inclusion, mut inclusion_len) = (Vec::new(), Vec::new());
    let (mut consistency, mut consistency_len) = (Vec::new(), Vec::new());
    for _ in 0..PROOFS {
        let seq = rand::random_range(1..=n);
        let started = Instant::now();
        let proof = ledger_tree::inclusion_proof(db.reader(), big.id, seq, n).await?.expect("in range");
        inclusion.push(started.elapsed());
        inclusion_len.push(proof.proof.len());
        merkle::verify_inclusion(seq - 1, n, &proof.leaf_hash, &proof.proof, &root)?;
        let from = rand::random_range(1..=n);
        let started = Instant::now();
        let proof = ledger_tree::consistency_proof(db.reader(), big.id, from, n).await?.expect("in range");
        consistency.push(started.elapsed());
        consistency_len.push(proof.proof.len());
        merkle::verify_consistency(from, n, &proof.proof, &proof.old_root, &root)?;
    }
    let max_len = |v: &[usize]| v.iter().max().copied().unwrap_or_default();
    let mean_len = |v: &[usize]| v.iter().sum::<usize>() as f64 / v.len() as f64;
    println!(
        "inclusion proof at {n}: {}; {:.1} hashes on average, at most {}",
        summary(inclusion.clone()),
        mean_len(&inclusion_len),
        max_len(&inclusion_len)
    );
    println!(
        "consistency proof to {n}: {}; {:.1} hashes on average, at most {}",
        summary(consistency.clone()),
        mean_len(&consistency_len),
        max_len(&consistency_len)
    );

    // 4. Over HTTP, signed in: proofs, and the ledger page next to a hub of ten entries.
    let client = reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build()?;
    let login = client.get(format!("{address}/login")).send().await?.text().await?;
    let prefix = "name=\"csrf-token\" content=\"";
    let csrf = login
        .find(prefix)
        .and_then(|s| login[s + prefix.len()..].split('"').next().map(str::to_owned))
        .unwrap_or_default();
    let form = [("handle", "auditor"), ("password", "bench password"), ("csrf_token", &csrf), ("next", "/")];
    let signed_in = client.post(format!("{address}/login")).form(&form).send().await?;
    anyhow::ensure!(signed_in.status() == 303, "sign-in failed: {}", signed_in.status());
    let mut http_proof = Vec::new();
    for _ in 0..PAGE_LOADS {
        let seq = rand::random_range(1..=n);
        let started = Instant::now();
        let response = client.get(format!("{address}/hubs/bench/ledger/proof/inclusion?seq={seq}")).send().await?;
        anyhow::ensure!(response.status() == 200, "proof: {}", response.status());
        response.bytes().await?;
        http_proof.push(started.elapsed());
    }
    println!("GET …/proof/inclusion at {n}: {}", summary(http_proof.clone()));
    let mut pages = Vec::new();
    for slug in ["bench", "small"] {
        let mut times = Vec::new();
        for _ in 0..PAGE_LOADS {
            let started = Instant::now();
            let response = client.get(format!("{address}/hubs/{slug}/ledger")).send().await?;
            anyhow::ensure!(response.status() == 200, "page: {}", response.status());
            let body = response.text().await?;
            anyhow::ensure!(body.contains("verdict-ok"), "the verdict is not ok: {slug}");
            times.push(started.elapsed());
        }
        println!("GET /hubs/{slug}/ledger: {}", summary(times.clone()));
        pages.push(summary(times));
    }

    // 5. The full walk (`ihf ledger verify`), once.
    let started = Instant::now();
    let report = ledger::verify_all(&db, Some("bench")).await?;
    let walk = started.elapsed();
    anyhow::ensure!(report.ok, "{:?}", report.lines);
    println!("ihf ledger verify at {n}: {:.1} s ({})", walk.as_secs_f64(), report.lines.join("; "));

    let bytes: u64 = std::fs::read_dir(&dir)?.filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum();
    println!("database files: {:.0} MiB", bytes as f64 / (1024.0 * 1024.0));

    println!();
    println!("| measure | result |");
    println!("| --- | --- |");
    println!("| append, one per transaction, chain only | {chain_rate:.0} entries/s |");
    println!("| append, one per transaction, chain + tree + signed checkpoint | **{tree_rate:.0} entries/s** |");
    println!("| fill to {n}, {FILL_BATCH} appends per transaction, with the tree | {fill_rate:.0} entries/s |");
    println!(
        "| inclusion proof at {n} (store) | {}; **{:.1} hashes** avg, max {} |",
        summary(inclusion),
        mean_len(&inclusion_len),
        max_len(&inclusion_len)
    );
    println!(
        "| consistency proof to {n} (store) | {}; **{:.1} hashes** avg, max {} |",
        summary(consistency),
        mean_len(&consistency_len),
        max_len(&consistency_len)
    );
    println!("| `GET …/proof/inclusion` at {n} (HTTP) | {} |", summary(http_proof));
    println!("| `GET /hubs/bench/ledger` ({n} entries) | {} |", pages[0]);
    println!("| `GET /hubs/small/ledger` (10 entries) | {} |", pages[1]);
    println!("| `ihf ledger verify` (full walk) at {n} | {:.1} s |", walk.as_secs_f64());
    println!("| database files at {n} entries | {:.0} MiB |", bytes as f64 / (1024.0 * 1024.0));
    stopper.stop(true).await;
    db.close().await;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
