//! Rebuilds the crate when a migration changes: `sqlx::migrate!` embeds them at compile time,
//! and Cargo does not otherwise notice a new or edited `.sql` file.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
