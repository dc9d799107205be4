//! A gzip-encoded live stream whose events are compressed once for all the streams they go to.
//!
//! Each event is deflated by a fresh compressor and ends with a sync flush (an empty stored
//! block): its bytes end on a byte boundary, so any sequence of such chunks is one valid deflate
//! stream. A frame shared by a thousand streams is therefore compressed once ([`Chunk`], kept
//! with the frame), and a stream holds no compressor at all — only the running CRC-32 of what it
//! sent, for the gzip trailer when the server ends it ([`GzipStream`]).
//!
//! What a compressor per stream would add is the history between events: a region's next
//! update mostly repeats its last one. [`Chunk::after`] gets that back without one: it
//! compresses an event as it follows a given history (the frames a stream was sent last), and
//! every stream that was sent the same frames last — all the viewers of a dashboard — shares
//! that one chunk (`live::hub::frame::Tail`). Heartbeats are empty blocks ([`EMPTY_BLOCK`]),
//! so they do not break the history. A deflate context per stream would cost 256 KiB; this
//! costs each stream a few pointers.

use actix_web::web::{Bytes, BytesMut};
use flate2::{Compress, Compression, FlushCompress};

/// One event's bytes, deflated on their own, with their CRC-32 and length for the trailer.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub deflated: Bytes,
    crc: u32,
    len: u64,
    /// x^(8·len) mod the CRC polynomial: what appends this chunk's CRC to a stream's in one
    /// multiplication (computed once here, not once per stream).
    shift: u32,
}

impl Chunk {
    /// Deflates `raw` on its own, ending with a sync flush (byte-aligned, not the last block).
    pub fn new(raw: &[u8]) -> Self {
        let mut compress = Compress::new(Compression::new(6), false);
        let mut out = Vec::with_capacity(raw.len() / 2 + 64);
        deflate(&mut compress, raw, &mut out);
        Self::of(raw, out)
    }

    /// Deflates `raw` as it follows `history` on a stream: its bytes may refer back into
    /// `history` (at most [`WINDOW`] bytes), so they are valid only on a stream whose last
    /// decompressed bytes are exactly `history` — every stream that was sent the same frames
    /// last. A region's next update mostly repeats its previous one (the same row with one
    /// number changed, the same markup around other text), which this sends as references.
    pub fn after(history: &[u8], raw: &[u8]) -> Self {
        let history = &history[history.len().saturating_sub(WINDOW)..];
        let mut compress = Compress::new(Compression::new(6), false);
        // The history's own compressed bytes are what the stream was sent already (differently
        // compressed, the same when decompressed): only its place in the window counts.
        let mut scratch = Vec::with_capacity(history.len() / 2 + 64);
        deflate(&mut compress, history, &mut scratch);
        let mut out = Vec::with_capacity(raw.len() / 2 + 64);
        deflate(&mut compress, raw, &mut out);
        Self::of(raw, out)
    }

    /// `raw` as stored (uncompressed) deflate blocks: for what one stream alone is sent (its
    /// token in the `hello` event), which a compressor — 170 KiB of tables — would cost more
    /// to make than it saves.
    pub fn stored(raw: &[u8]) -> Self {
        let mut out = Vec::with_capacity(raw.len() + 5 * (raw.len() / 65_535 + 1));
        for block in raw.chunks(65_535) {
            // Not the last block, stored: three header bits, then padding to the byte.
            out.push(0);
            let len = block.len() as u16;
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&(!len).to_le_bytes());
            out.extend_from_slice(block);
        }
        Self::of(raw, out)
    }

    fn of(raw: &[u8], deflated: Vec<u8>) -> Self {
        let mut crc = crc32fast::Hasher::new();
        crc.update(raw);
        let len = raw.len() as u64;
        Self { deflated: Bytes::from(deflated), crc: crc.finalize(), len, shift: x8n(len) }
    }
}

/// How far back a chunk made by [`Chunk::after`] may refer: half deflate's 32 KiB window, so
/// compressing the history first costs little.
pub const WINDOW: usize = 16 * 1024;

/// An empty stored block (what a sync flush writes): bytes on the wire that decompress to
/// nothing. A gzip stream's heartbeat, so that it keeps the connection alive without changing
/// what the stream's next chunk may refer back to.
pub const EMPTY_BLOCK: [u8; 5] = [0x00, 0x00, 0x00, 0xff, 0xff];

/// Feeds all of `input` to `compress` and ends with a sync flush, appending to `out`.
fn deflate(compress: &mut Compress, input: &[u8], out: &mut Vec<u8>) {
    let mut consumed = 0usize;
    loop {
        if out.capacity() - out.len() < 64 {
            out.reserve(out.capacity().max(256));
        }
        let before = compress.total_in();
        // The input is in memory: the only failure is a stream error, which a compressor fed
        // in order does not give; an unencodable chunk ends as it stands.
        if compress.compress_vec(&input[consumed..], out, FlushCompress::Sync).is_err() {
            break;
        }
        consumed += usize::try_from(compress.total_in() - before).unwrap_or(0);
        // Done when all the input is in and the flush fitted (space left over).
        if consumed >= input.len() && out.capacity() - out.len() >= 64 {
            break;
        }
    }
}

/// CRC-32's polynomial, reflected.
const POLY: u32 = 0xedb8_8320;

/// a(x)·b(x) modulo the CRC polynomial, reflected (zlib's `multmodp`).
fn multiply(a: u32, mut b: u32) -> u32 {
    let mut product = 0u32;
    for i in 0..32 {
        product ^= b & ((a >> (31 - i)) & 1).wrapping_neg();
        b = (b >> 1) ^ ((b & 1).wrapping_neg() & POLY);
    }
    product
}

/// x^(8·len) modulo the CRC polynomial, reflected: multiplying a CRC by it appends `len` bytes'
/// worth of zeros, so `multiply(x8n(len(B)), crc(A)) ^ crc(B)` is the CRC of A followed by B.
fn x8n(len: u64) -> u32 {
    let (mut power, mut square, mut n) = (0x8000_0000u32, 0x0080_0000u32, len);
    while n != 0 {
        if n & 1 != 0 {
            power = multiply(square, power);
        }
        square = multiply(square, square);
        n >>= 1;
    }
    power
}

/// The per-stream state of a gzip-encoded stream: the CRC-32 and length of what it has sent.
#[derive(Debug, Clone, Default)]
pub struct GzipStream {
    crc: u32,
    len: u64,
}

/// The gzip member header: deflate, no name, no time, unknown OS.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

impl GzipStream {
    /// The stream's first bytes: the gzip header, then `first` compressed.
    pub fn start(&mut self, first: &Chunk) -> Bytes {
        let mut out = BytesMut::with_capacity(HEADER.len() + first.deflated.len());
        out.extend_from_slice(&HEADER);
        out.extend_from_slice(&first.deflated);
        self.count(first);
        out.freeze()
    }

    /// The bytes that send `chunk` on this stream.
    pub fn send(&mut self, chunk: &Chunk) -> Bytes {
        self.count(chunk);
        chunk.deflated.clone()
    }

    /// A heartbeat: bytes that keep the connection alive and decompress to nothing.
    pub fn heartbeat(&self) -> Bytes {
        Bytes::from_static(&EMPTY_BLOCK)
    }

    fn count(&mut self, chunk: &Chunk) {
        self.crc = multiply(chunk.shift, self.crc) ^ chunk.crc;
        self.len += chunk.len;
    }

    /// The last bytes: an empty final block, the CRC-32 and the length (mod 2^32) of the data.
    pub fn finish(self) -> Bytes {
        let (crc, len) = (self.crc, self.len);
        let mut out = BytesMut::with_capacity(10);
        // A final fixed-Huffman block holding only end-of-block: bits 1, 01, 0000000.
        out.extend_from_slice(&[0x03, 0x00]);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&(len as u32).to_le_bytes());
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn chunks_compressed_apart_make_one_gzip_stream() {
        let events: Vec<Vec<u8>> = (0..5)
            .map(|i| {
                format!("event: feed\ndata: <li id=\"a-{i}\">row {i} {}</li>\n\n", "x".repeat(i * 300)).into_bytes()
            })
            .collect();
        let mut stream = GzipStream::default();
        let mut wire = stream.start(&Chunk::stored(b"retry: 2000\n\n")).to_vec();
        for (i, event) in events.iter().enumerate() {
            let chunk = if i % 2 == 0 { Chunk::new(event) } else { Chunk::stored(event) };
            wire.extend_from_slice(&stream.send(&chunk));
        }
        let mut expected = b"retry: 2000\n\n".to_vec();
        expected.extend(events.concat());

        // What has arrived so far decodes before the stream ends (each chunk ends flushed).
        let mut partial = flate2::Decompress::new(false);
        let mut out = Vec::with_capacity(expected.len() + 16);
        partial.decompress_vec(&wire[HEADER.len()..], &mut out, flate2::FlushDecompress::Sync).unwrap();
        assert_eq!(out, expected);

        wire.extend_from_slice(&stream.finish());
        let mut decoded = Vec::new();
        flate2::read::GzDecoder::new(&wire[..]).read_to_end(&mut decoded).unwrap();
        assert_eq!(decoded, expected, "the whole stream is valid gzip, trailer included");
    }

    #[test]
    fn a_chunk_after_its_history_refers_back_and_decodes_on_a_stream_that_has_it() {
        let row = |i: usize| {
            format!(
                "event: widgets\nid: {i}\ndata: <tr id=\"widget-1\"><td class=\"num\">{i}</td><td>{}</td></tr>\n\n",
                "<rect x=\"2\" y=\"40\" width=\"16\"/>".repeat(40)
            )
        };
        let (first, second) = (row(1).into_bytes(), row(2).into_bytes());
        let alone = Chunk::new(&second);
        let after = Chunk::after(&first, &second);
        assert!(
            after.deflated.len() * 3 < alone.deflated.len(),
            "{} vs {}",
            after.deflated.len(),
            alone.deflated.len()
        );

        let mut stream = GzipStream::default();
        let mut wire = stream.start(&Chunk::stored(b"retry: 2000\n\n")).to_vec();
        wire.extend_from_slice(&stream.send(&Chunk::new(&first)));
        wire.extend_from_slice(&stream.heartbeat());
        wire.extend_from_slice(&stream.send(&after));
        wire.extend_from_slice(&stream.finish());
        let mut decoded = Vec::new();
        flate2::read::GzDecoder::new(&wire[..]).read_to_end(&mut decoded).unwrap();
        assert_eq!(decoded, [&b"retry: 2000\n\n"[..], &first, &second].concat(), "heartbeats add nothing");
    }

    #[test]
    fn history_beyond_the_window_is_not_referred_to() {
        // Bytes that do not repeat (a linear congruential sequence), so that only the history
        // can shorten what follows.
        let mut x = 7u32;
        // Longer than the window, shorter than deflate's own: without the cut, a compressor
        // would refer to all of it.
        let old: Vec<u8> = (0..WINDOW + 8192)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                (x >> 16) as u8
            })
            .collect();
        // What follows repeats the part of the history beyond the window, and the part in it.
        let raw = [&old[..4096], &old[old.len() - 4096..]].concat();
        let chunk = Chunk::after(&old, &raw);
        assert!(chunk.deflated.len() < raw.len() * 3 / 4, "the part in the window is referred to");
        // Decoded after only the window's worth of history, it is the same.
        let mut inflate = flate2::Decompress::new(false);
        let mut out = Vec::with_capacity(WINDOW + raw.len() + 64);
        let history = Chunk::stored(&old[old.len() - WINDOW..]);
        inflate.decompress_vec(&history.deflated, &mut out, flate2::FlushDecompress::Sync).unwrap();
        inflate.decompress_vec(&chunk.deflated, &mut out, flate2::FlushDecompress::Sync).unwrap();
        assert_eq!(&out[WINDOW..], &raw[..]);
    }

    #[test]
    fn a_stream_crc_is_its_chunks_crcs_combined() {
        let parts: Vec<Vec<u8>> =
            [0usize, 1, 7, 300, 5000, 70_000].iter().map(|n| (0..*n).map(|i| (i * 31 % 251) as u8).collect()).collect();
        let mut stream = GzipStream::default();
        let mut whole = crc32fast::Hasher::new();
        for part in &parts {
            stream.count(&Chunk::stored(part));
            whole.update(part);
        }
        assert_eq!((stream.crc, stream.len), (whole.finalize(), parts.iter().map(|p| p.len() as u64).sum()));
    }

    #[test]
    fn a_repeated_region_shrinks() {
        let row =
            "<li class=\"annotation\" id=\"annotation-1\"><span class=\"badge c-friction\">friction</span></li>\n";
        let html = row.repeat(20);
        assert!(Chunk::new(html.as_bytes()).deflated.len() < html.len() / 5);
    }
}
