# Everyday recipes. `cargo install just` to use them; CI and the README's two commands do not need just.

pg := env_var_or_default("IHF_TEST_PG", "postgres://postgres@127.0.0.1:5432/postgres")

# Serve the demo on SQLite, rebuilding on the way.
dev:
    cargo run

# Serve on PostgreSQL (the database must exist).
dev-pg db="ihf":
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/{{db}} cargo run

# The SQLite suite.
test:
    cargo test

# SQLite and PostgreSQL suites.
test-pg:
    IHF_TEST_PG={{pg}} cargo test

# Browser tests in headless Chromium (needs chromium and chromium-driver).
e2e:
    IHF_TEST_PG={{pg}} IHF_TEST_BROWSER=1 cargo test --test browser --test browser_triage --test annotations_browser --test embed

# Formatting and lints, as CI runs them.
lint:
    cargo fmt --all --check
    cargo clippy --all-targets -- -D warnings

# What CI runs.
ci:
    bash .ci/run

# Page benchmarks (SQLite and PostgreSQL) into BENCHMARKS.md.
bench:
    bash bench/pages.sh

# Live-region benchmarks into BENCHMARKS.md.
bench-live:
    cargo build --release --bin ihf
    cargo run --release --example bench_live

# Live fan-out against polling (distinct viewers, own sessions) into BENCHMARKS.md (#16).
bench-fanout:
    cargo build --release --bin ihf
    cargo run --release --example bench_fanout

# Triage board benchmark (demo, then 10,000 more annotations); add IHF_BENCH_PG=… for PostgreSQL.
bench-triage:
    cargo run --release --example bench_triage

# Event ingestion throughput (SQLite and PostgreSQL) into BENCHMARKS.md.
bench-ingest:
    cargo run --release --example bench_ingest

# Ledger benchmark: 1,000,000 entries in one hub, proofs, the ledger page (SQLite).
bench-ledger:
    cargo run --release --example bench_ledger
