//! A response body as a browser reads it: de-chunked (HTTP/1.1 `Transfer-Encoding: chunked`) and
//! inflated when the server sent it gzip-encoded (what browsers ask for), piece by piece as it
//! arrives, as an event stream must be read.

/// Inflates a gzip body as it arrives (each live event ends flushed, so it comes out whole).
pub struct Inflate {
    inflate: flate2::Decompress,
    /// What is left of the 10-byte gzip header (the server writes no optional fields).
    header: usize,
}

impl Inflate {
    pub fn new() -> Self {
        Self { inflate: flate2::Decompress::new(false), header: 10 }
    }

    /// Inflates `bytes` onto `out`: all of what they hold, however much bigger it is (an
    /// event compressed after the ones before it may be a hundredth of its size).
    /// An error when the bytes are not a valid continuation of the stream.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), flate2::DecompressError> {
        let skip = self.header.min(bytes.len());
        self.header -= skip;
        let mut input = &bytes[skip..];
        loop {
            out.reserve(input.len() * 8 + 4096);
            let before = self.inflate.total_in();
            let status = self.inflate.decompress_vec(input, out, flate2::FlushDecompress::Sync)?;
            let used = (self.inflate.total_in() - before) as usize;
            input = &input[used..];
            // Output left inside the decompressor fills the space given: room to spare means it
            // has given all it had (of all the input, or of what it could take).
            let drained = out.len() < out.capacity() && (input.is_empty() || used == 0);
            if status == flate2::Status::StreamEnd || drained {
                return Ok(());
            }
        }
    }
}

/// Takes the chunk framing off a `Transfer-Encoding: chunked` body as it arrives.
#[derive(Default)]
pub struct Dechunk {
    pending: Vec<u8>,
}

impl Dechunk {
    /// Appends to `out` the payload of every chunk complete so far.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        self.pending.extend_from_slice(bytes);
        let mut at = 0;
        while let Some(line) = memchr::memmem::find(&self.pending[at..], b"\r\n") {
            let size_text = String::from_utf8_lossy(&self.pending[at..at + line]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
            let start = at + line + 2;
            if self.pending.len() < start + size + 2 {
                break;
            }
            out.extend_from_slice(&self.pending[start..start + size]);
            at = start + size + 2;
        }
        self.pending.drain(..at);
    }
}

/// A streamed response as a browser reads it: its head, then its body de-chunked and inflated.
#[derive(Default)]
pub struct Response {
    head: Vec<u8>,
    body: Option<(Dechunk, Option<Inflate>)>,
    dechunked: Vec<u8>,
}

/// A buffer of `capacity` bytes whose pages are already the process's: many clients in one
/// process growing their buffers at one moment would wait on the kernel's page faults together.
pub fn touched(capacity: usize) -> Vec<u8> {
    let mut buffer = vec![1u8; capacity];
    buffer.clear();
    buffer
}

impl Response {
    /// A response whose buffers are ready for events of about `capacity` bytes (see [`touched`]).
    #[allow(dead_code)] // not every includer reads many streams at once
    pub fn sized(capacity: usize) -> Self {
        Self { head: Vec::new(), body: None, dechunked: touched(capacity) }
    }

    /// Reads `bytes` off the connection: appends what the body says to `text`; returns the status
    /// once, when the head is complete.
    pub fn feed(&mut self, bytes: &[u8], text: &mut Vec<u8>) -> Option<u16> {
        let mut status = None;
        let mut fresh = bytes;
        let rest;
        if self.body.is_none() {
            self.head.extend_from_slice(bytes);
            let end = memchr::memmem::find(&self.head, b"\r\n\r\n")?;
            let head = String::from_utf8_lossy(&self.head[..end]).to_ascii_lowercase();
            status = Some(head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0));
            let gzip = head.contains("content-encoding: gzip");
            let pending = touched(self.dechunked.capacity());
            self.body = Some((Dechunk { pending }, gzip.then(Inflate::new)));
            rest = self.head.split_off(end + 4);
            self.head.clear();
            fresh = &rest;
        }
        if let Some((dechunk, inflate)) = &mut self.body {
            self.dechunked.clear();
            dechunk.feed(fresh, &mut self.dechunked);
            match inflate {
                // A broken stream shows as events that never arrive.
                Some(inflate) => {
                    let _ = inflate.feed(&self.dechunked, text);
                }
                None => text.extend_from_slice(&self.dechunked),
            }
        }
        status
    }
}
