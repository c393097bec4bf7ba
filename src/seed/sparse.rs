//! Writing an image into a new file with holes where it is zero: a seed's free clusters, cluster slack and
//! zero runs in its files cost no disk blocks and no write, yet read back as the same bytes (a hole reads
//! as zeros), so digests over the logical bytes do not change.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;

/// Hole granularity: the page size and the usual filesystem block (ext4, xfs, tmpfs); a zero block is
/// only skipped when it is whole and aligned, or it would be allocated anyway.
const BLOCK: usize = 4096;
/// Bytes gathered before they go to the file: a multiple of `BLOCK`, so every batch starts aligned.
const BATCH: usize = 256 * BLOCK;

/// Writes sequentially into `file` (which must be empty) with `pwrite`, skipping zero blocks; `finish`
/// writes the rest and sets the length, which makes a trailing zero run a hole too.
pub(crate) struct SparseWriter<'a> {
    file: &'a File,
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    pos: u64,
}

impl<'a> SparseWriter<'a> {
    /// Truncates `file` first: a hole only reads as zeros where nothing was written before.
    pub(crate) fn new(file: &'a File) -> io::Result<Self> {
        file.set_len(0)?;
        Ok(SparseWriter {
            file,
            buf: Vec::with_capacity(BATCH),
            pos: 0,
        })
    }

    /// Writes `buf`'s non-zero blocks, each run of them with one call.
    fn drain(&mut self) -> io::Result<()> {
        let mut run: Option<usize> = None;
        for (i, block) in self.buf.chunks(BLOCK).enumerate() {
            let zero = block.iter().all(|&b| b == 0);
            match (zero, run) {
                (false, None) => run = Some(i * BLOCK),
                (true, Some(start)) => {
                    self.file
                        .write_all_at(&self.buf[start..i * BLOCK], self.pos + start as u64)?;
                    run = None;
                }
                _ => {}
            }
        }
        if let Some(start) = run {
            self.file
                .write_all_at(&self.buf[start..], self.pos + start as u64)?;
        }
        self.pos += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Writes what is left and gives the file its full length; returns that length.
    pub(crate) fn finish(mut self) -> io::Result<u64> {
        self.drain()?;
        self.file.set_len(self.pos)?;
        Ok(self.pos)
    }
}

impl Write for SparseWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(BATCH - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == BATCH {
            self.drain()?;
        }
        Ok(n)
    }

    /// Nothing to do: a partial batch waits for `finish`, so that blocks stay aligned.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn zero_blocks_become_holes_and_read_back_as_zeros() {
        let f = tempfile::tempfile().unwrap();
        // Stale bytes in the file must not show through the holes.
        f.write_all_at(&[0xee; 3 * BATCH], 0).unwrap();
        let mut w = SparseWriter::new(&f).unwrap();
        let mut want = Vec::new();
        // Data, a zero run spanning a batch boundary, data, an unaligned zero tail.
        for (byte, len) in [
            (7u8, 10),
            (0, 2 * BATCH + 5),
            (9, BLOCK),
            (0, 3 * BLOCK + 1),
        ] {
            let part = vec![byte; len];
            w.write_all(&part).unwrap();
            want.extend_from_slice(&part);
        }
        assert_eq!(w.finish().unwrap(), want.len() as u64);
        let mut got = vec![0u8; want.len() + 1];
        let n = f.read_at(&mut got, 0).unwrap();
        assert_eq!(n, want.len());
        assert!(got[..n] == want[..], "logical bytes differ");
        // Two blocks of data (plus a block that straddles), the rest holes.
        let allocated = f.metadata().unwrap().blocks() * 512;
        assert!(allocated <= 4 * BLOCK as u64, "{allocated} bytes allocated");
    }
}
