//! Build steps:
//!
//! - Rebuilds the crate when a migration changes: `sqlx::migrate!` embeds them at compile time,
//!   and Cargo does not otherwise notice a new or edited `.sql` file.
//! - Compiles `static/` into the binary: every file once raw, once brotli and once gzip, with
//!   its strong ETag (`src/web/assets.rs` serves them). Writes `$OUT_DIR/assets.rs`, a table of
//!   `include_bytes!`, and the compressed copies beside it.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

#[path = "src/web/content_type.rs"]
mod content_type;

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=static");
    if let Err(e) = embed_assets() {
        panic!("embedding static/: {e}");
    }
}

/// Files served from `static/`: everything except documentation.
fn files(dir: &Path, prefix: &str, out: &mut Vec<(String, PathBuf)>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        println!("cargo:rerun-if-changed={}", path.display());
        if entry.file_type()?.is_dir() {
            files(&path, &format!("{prefix}{name}/"), out)?;
        } else if !name.starts_with('.') && !name.ends_with(".md") {
            out.push((format!("{prefix}{name}"), path));
        }
    }
    Ok(())
}

fn brotli(raw: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    {
        let mut writer = brotli::CompressorWriter::new(&mut out, 4096, 11, 22);
        writer.write_all(raw)?;
    }
    Ok(out)
}

fn gzip(raw: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(raw)?;
    encoder.finish()
}

fn embed_assets() -> std::io::Result<()> {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").map_err(std::io::Error::other)?);
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").map_err(std::io::Error::other)?);
    let compressed_dir = out_dir.join("assets");
    std::fs::create_dir_all(&compressed_dir)?;
    let mut list = Vec::new();
    files(&manifest.join("static"), "", &mut list)?;
    // Sorted by path: the server finds an asset by binary search.
    list.sort();

    let mut all = Sha256::new();
    let mut table = String::from("pub static EMBEDDED: &[Embedded] = &[\n");
    for (index, (name, path)) in list.iter().enumerate() {
        let raw = std::fs::read(path)?;
        let hash = hex(&Sha256::digest(&raw));
        all.update(name.as_bytes());
        all.update([0]);
        all.update(&raw);
        let br_path = compressed_dir.join(format!("{index}.br"));
        let gz_path = compressed_dir.join(format!("{index}.gz"));
        std::fs::write(&br_path, brotli(&raw)?)?;
        std::fs::write(&gz_path, gzip(&raw)?)?;
        let _ = writeln!(
            table,
            "    Embedded {{ path: {name:?}, content_type: {ct:?}, hash: {hash:?}, \
             raw: include_bytes!({raw_path:?}), br: include_bytes!({br:?}), gzip: include_bytes!({gz:?}) }},",
            ct = content_type::of(name),
            hash = &hash[..32],
            raw_path = path.display().to_string(),
            br = br_path.display().to_string(),
            gz = gz_path.display().to_string(),
        );
    }
    table.push_str("];\n");
    let version = hex(&all.finalize());
    let _ = writeln!(table, "pub const VERSION: &str = {:?};", &version[..12]);
    std::fs::write(out_dir.join("assets.rs"), table)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
