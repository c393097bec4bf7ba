//! pigz-style parallel gzip: the input is cut at fixed 128 KiB offsets, every chunk is deflated on its own
//! (primed with the 32 KiB before it as dictionary, ended with a sync flush), and the pieces are concatenated
//! into ONE gzip member. Chunk boundaries depend only on the input, so the bytes are the same whatever the
//! number of threads. Readers see an ordinary gzip file (`gzip -t`, `tar -xzf`, Python's tarfile).
//!
//! Work goes in batches of chunks; while one batch is deflated in parallel, the previous batch's output is
//! written (and hashed by the caller's writer) and the next batch is read, so the caller's I/O overlaps the
//! compression.

use std::io::{self, Read, Write};

use flate2::{Compress, Compression, Crc, FlushCompress, Status};
use rayon::prelude::*;

/// Uncompressed bytes per independently deflated chunk (pigz's default block size).
pub const CHUNK: usize = 128 * 1024;
/// Deflate's window: what a chunk may refer back to.
const DICT: usize = 32 * 1024;
/// A final, empty fixed-Huffman block: ends the deflate stream after the last sync-flushed chunk.
const FINAL_BLOCK: [u8; 2] = [0x03, 0x00];

/// The fixed 10-byte gzip header: no file name, MTIME 0, XFL as zlib sets it for the level, OS 3 (Unix).
pub fn gzip_header(level: u32) -> [u8; 10] {
    let xfl = match level {
        9 => 2,
        0 | 1 => 4,
        _ => 0,
    };
    [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 3]
}

fn deflate_chunk(level: u32, dict: &[u8], data: &[u8]) -> io::Result<(Vec<u8>, Crc)> {
    let mut crc = Crc::new();
    crc.update(data);
    // A fresh state per chunk, never a reset one: zlib-rs' reset keeps the old window, and stale bytes
    // there can change which of two equal matches wins (same class of bug as zlib-rs#459), which would
    // make the output depend on which chunks a thread happened to compress before. A fresh state is zeroed.
    let mut c = Compress::new(Compression::new(level), false);
    if !dict.is_empty() && level > 0 {
        c.set_dictionary(dict).map_err(io::Error::other)?;
    }
    let mut out = Vec::with_capacity(data.len() + data.len() / 16 + 64);
    let mut consumed = 0usize;
    loop {
        if out.capacity() - out.len() < 64 {
            out.reserve(data.len() / 4 + 64);
        }
        let before = c.total_in();
        let status = c
            .compress_vec(&data[consumed..], &mut out, FlushCompress::Sync)
            .map_err(io::Error::other)?;
        consumed += (c.total_in() - before) as usize;
        // zlib's contract: the flush is complete once it returns with output space left over.
        if consumed == data.len() && (out.len() < out.capacity() || status == Status::BufError) {
            break;
        }
    }
    Ok((out, crc))
}

/// Reads until `want` more bytes are in `buf` or the input ends; returns how many were added. The
/// buffer grows with what arrives, so a small layer does not pay for zeroing a whole batch.
fn read_full<R: Read>(r: &mut R, buf: &mut Vec<u8>, want: usize) -> io::Result<usize> {
    r.by_ref().take(want as u64).read_to_end(buf)
}

/// A batch: `buf[..dict]` is the tail of the previous batch (the first chunk's dictionary), the rest is input.
struct Batch {
    buf: Vec<u8>,
    dict: usize,
}

impl Batch {
    /// The batch that follows this one, primed with this one's last 32 KiB, filled from `r`.
    fn next<R: Read>(&self, r: &mut R, bytes: usize) -> io::Result<Batch> {
        let keep = self.buf.len().min(DICT);
        // One chunk first: a small layer (most of them) then never allocates a whole batch.
        let first = bytes.min(CHUNK);
        let mut buf = Vec::with_capacity(keep + first);
        buf.extend_from_slice(&self.buf[self.buf.len() - keep..]);
        if read_full(r, &mut buf, first)? == first && bytes > first {
            buf.reserve_exact(bytes - first);
            read_full(r, &mut buf, bytes - first)?;
        }
        Ok(Batch { buf, dict: keep })
    }

    fn data_len(&self) -> usize {
        self.buf.len() - self.dict
    }

    fn deflate(&self, level: u32) -> io::Result<Vec<(Vec<u8>, Crc)>> {
        let n = self.data_len().div_ceil(CHUNK);
        (0..n)
            .into_par_iter()
            .map(|i| {
                let start = self.dict + i * CHUNK;
                let end = (start + CHUNK).min(self.buf.len());
                deflate_chunk(
                    level,
                    &self.buf[start.saturating_sub(DICT)..start],
                    &self.buf[start..end],
                )
            })
            .collect()
    }
}

/// Compresses everything `r` yields into one gzip member written to `w`. Returns the uncompressed length.
///
/// Runs on the current rayon pool (use `ThreadPool::install` to choose one); the bytes do not depend on it.
pub fn compress<R: Read + Send, W: Write + Send>(
    mut r: R,
    level: u32,
    mut w: W,
) -> io::Result<u64> {
    let level = level.min(9);
    // Enough chunks per batch that every thread stays busy while the caller reads/writes the neighbours.
    let batch_bytes = CHUNK * (8 * rayon::current_num_threads()).clamp(32, 256);
    w.write_all(&gzip_header(level))?;
    let mut crc = Crc::new();
    let mut total: u64 = 0;
    let mut pending: Vec<(Vec<u8>, Crc)> = Vec::new();
    let empty = Batch {
        buf: Vec::new(),
        dict: 0,
    };
    let mut batch = empty.next(&mut r, batch_bytes)?;
    while batch.data_len() > 0 {
        let (done, io) = rayon::join(
            || batch.deflate(level),
            || -> io::Result<Batch> {
                for (out, _) in &pending {
                    w.write_all(out)?;
                }
                batch.next(&mut r, batch_bytes)
            },
        );
        pending = done?;
        for (_, c) in &pending {
            crc.combine(c);
        }
        total += batch.data_len() as u64;
        batch = io?;
    }
    for (out, _) in &pending {
        w.write_all(out)?;
    }
    w.write_all(&FINAL_BLOCK)?;
    w.write_all(&crc.sum().to_le_bytes())?;
    // ISIZE is the length modulo 2^32 by definition.
    w.write_all(&(total as u32).to_le_bytes())?;
    w.flush()?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gunzip(gz: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(gz)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    fn sample(n: usize) -> Vec<u8> {
        // Repetitive but not trivial, with matches that cross chunk boundaries.
        let mut x: u32 = 1;
        (0..n)
            .map(|i| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                if i.is_multiple_of(3) {
                    (x >> 24) as u8
                } else {
                    b"kimage layer "[i % 13]
                }
            })
            .collect()
    }

    #[test]
    fn round_trips_at_every_size_class() {
        for n in [
            0,
            1,
            CHUNK - 1,
            CHUNK,
            CHUNK + 1,
            3 * CHUNK + 17,
            40 * CHUNK + 5,
        ] {
            let data = sample(n);
            let mut gz = Vec::new();
            assert_eq!(compress(&data[..], 6, &mut gz).unwrap(), n as u64);
            assert_eq!(gunzip(&gz), data, "size {n}");
        }
    }

    #[test]
    fn same_bytes_with_one_or_three_threads() {
        let data = sample(70 * CHUNK + 99);
        let run = |t| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .unwrap();
            let mut gz = Vec::new();
            pool.install(|| compress(&data[..], 6, &mut gz)).unwrap();
            gz
        };
        assert_eq!(run(1), run(3));
    }
}
