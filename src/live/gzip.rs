//! A gzip-encoded live stream whose events are compressed once for all the streams they go to.
//!
//! Each event is deflated on its own, by a fresh compressor, and ends with a sync flush (an empty
//! stored block): its bytes refer to nothing before them and end on a byte boundary, so any
//! sequence of such chunks is one valid deflate stream. A frame shared by a thousand streams is
//! therefore compressed once ([`Chunk`], kept with the frame), and a stream holds no compressor
//! at all — only the running CRC-32 of what it sent, for the gzip trailer when the server ends
//! it ([`GzipStream`]). What is lost against a compressor per stream is the history between
//! events; what is kept is the memory target for idle streams (a deflate context costs 256 KiB).

use actix_web::web::{Bytes, BytesMut};
use flate2::{Compress, Compression, FlushCompress};

/// One event's bytes, deflated on their own, with their CRC-32 and length for the trailer.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub deflated: Bytes,
    crc: u32,
    len: u64,
}

impl Chunk {
    /// Deflates `raw` on its own, ending with a sync flush (byte-aligned, not the last block).
    pub fn new(raw: &[u8]) -> Self {
        let mut compress = Compress::new(Compression::new(6), false);
        let mut out = Vec::with_capacity(raw.len() / 2 + 64);
        let mut consumed = 0usize;
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(256));
            }
            let before = compress.total_in();
            // The input is in memory: the only failure is a stream error, which a fresh
            // compressor fed in order does not give; an unencodable chunk ends as it stands.
            if compress.compress_vec(&raw[consumed..], &mut out, FlushCompress::Sync).is_err() {
                break;
            }
            consumed += usize::try_from(compress.total_in() - before).unwrap_or(0);
            // Done when all the input is in and the flush fitted (space left over).
            if consumed >= raw.len() && out.capacity() - out.len() >= 64 {
                break;
            }
        }
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
        Self { deflated: Bytes::from(deflated), crc: crc.finalize(), len: raw.len() as u64 }
    }
}

/// The per-stream state of a gzip-encoded stream: the CRC-32 and length of what it has sent.
#[derive(Debug, Clone, Default)]
pub struct GzipStream {
    crc: crc32fast::Hasher,
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

    fn count(&mut self, chunk: &Chunk) {
        self.crc.combine(&crc32fast::Hasher::new_with_initial_len(chunk.crc, chunk.len));
    }

    /// The last bytes: an empty final block, the CRC-32 and the length (mod 2^32) of the data.
    pub fn finish(self) -> Bytes {
        let len = self.crc.total_len();
        let crc = self.crc.finalize();
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
    fn a_repeated_region_shrinks() {
        let row =
            "<li class=\"annotation\" id=\"annotation-1\"><span class=\"badge c-friction\">friction</span></li>\n";
        let html = row.repeat(20);
        assert!(Chunk::new(html.as_bytes()).deflated.len() < html.len() / 5);
    }
}
