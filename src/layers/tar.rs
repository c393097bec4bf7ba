//! A streaming GNU-format tar writer that produces exactly what
//! `tar --format=gnu --sort=name --numeric-owner --owner=0 --group=0 --mtime=@T` (GNU tar 1.34) writes for the
//! same tree, so the layer format is the one every tar on a node already reads, and a test can hold it to
//! GNU tar byte for byte.
//!
//! The stream is a `Read` so the compressor pulls from it; file contents are streamed from disk, never loaded.

use std::fs::File;
use std::io::{self, Read};

use super::{Content, EntryKind, ResolvedEntry};

const BLOCK: usize = 512;
/// GNU tar's default record size: the archive is padded to a multiple of it.
const RECORD: u64 = 20 * BLOCK as u64;

/// Writes a numeric header field the way GNU tar does: zero-padded octal with a trailing NUL when it fits,
/// base-256 (high bit set) when it does not.
fn put_num(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    if digits >= 22 || value < (1u64 << (3 * digits)) {
        let s = format!("{value:0digits$o}");
        field[..digits].copy_from_slice(s.as_bytes());
        field[digits] = 0;
    } else {
        field.fill(0);
        let mut v = value;
        for b in field.iter_mut().rev() {
            *b = (v & 0xff) as u8;
            v >>= 8;
        }
        field[0] |= 0x80;
    }
}

/// The fields of one 512-byte header. `name`/`link` longer than 100 bytes are cut here; the caller emits
/// LongLink records first. Names longer than 31 bytes are refused before a layer is built.
struct Header<'a> {
    name: &'a [u8],
    link: &'a [u8],
    typeflag: u8,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: u64,
    uname: &'a str,
    gname: &'a str,
}

impl Header<'_> {
    fn encode(&self) -> [u8; BLOCK] {
        let mut h = [0u8; BLOCK];
        let put = |h: &mut [u8], at: usize, max: usize, v: &[u8]| {
            h[at..at + v.len().min(max)].copy_from_slice(&v[..v.len().min(max)])
        };
        put(&mut h, 0, 100, self.name);
        put_num(&mut h[100..108], u64::from(self.mode));
        put_num(&mut h[108..116], self.uid);
        put_num(&mut h[116..124], self.gid);
        put_num(&mut h[124..136], self.size);
        put_num(&mut h[136..148], self.mtime);
        h[156] = self.typeflag;
        put(&mut h, 157, 100, self.link);
        // GNU magic + version: "ustar  \0".
        h[257..265].copy_from_slice(b"ustar  \0");
        put(&mut h, 265, 31, self.uname.as_bytes());
        put(&mut h, 297, 31, self.gname.as_bytes());
        // Checksum: the sum of all bytes with the field itself as spaces, as 6 octal digits, NUL, space.
        h[148..156].fill(b' ');
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..154].copy_from_slice(format!("{sum:06o}").as_bytes());
        h[154] = 0;
        h
    }
}

fn pad_len(n: u64) -> usize {
    ((BLOCK as u64 - n % BLOCK as u64) % BLOCK as u64) as usize
}

/// A GNU `././@LongLink` record (type `L` for names, `K` for link targets) carrying `data` plus its NUL.
fn long_link(out: &mut Vec<u8>, typeflag: u8, data: &[u8]) {
    let size = data.len() as u64 + 1;
    let h = Header {
        name: b"././@LongLink",
        link: b"",
        typeflag,
        mode: 0o644,
        uid: 0,
        gid: 0,
        size,
        mtime: 0,
        uname: "",
        gname: "",
    };
    out.extend_from_slice(&h.encode());
    out.extend_from_slice(data);
    out.push(0);
    out.resize(out.len() + pad_len(size), 0);
}

/// Every header block (LongLink records included) that precedes `e`'s content.
fn entry_headers(e: &ResolvedEntry, size: u64, mtime: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(BLOCK * 2);
    let mut name = e.path.clone().into_bytes();
    if *e.kind == EntryKind::Directory {
        name.push(b'/');
    }
    let link: &[u8] = match e.kind {
        EntryKind::Symlink(t) => t.as_bytes(),
        _ => b"",
    };
    // GNU tar switches to a LongLink record only when a name does not fit the 100-byte field.
    if name.len() > 100 {
        long_link(&mut out, b'L', &name);
    }
    if link.len() > 100 {
        long_link(&mut out, b'K', link);
    }
    let typeflag = match e.kind {
        EntryKind::File(_) => b'0',
        EntryKind::Directory => b'5',
        EntryKind::Symlink(_) => b'2',
    };
    let h = Header {
        name: &name,
        link,
        typeflag,
        mode: e.mode,
        uid: e.uid,
        gid: e.gid,
        size,
        mtime,
        uname: e.uname,
        gname: e.gname,
    };
    out.extend_from_slice(&h.encode());
    out
}

enum Stage {
    /// Emitting header bytes (and, for in-memory files, the content and padding) from `buf[pos..]`.
    Buf,
    /// Streaming a file from disk: `left` bytes still to come, then `pad` zero bytes.
    File {
        file: File,
        left: u64,
        pad: usize,
    },
    Done,
}

/// The whole archive as a byte stream.
pub(super) struct TarStream<'a> {
    entries: &'a [ResolvedEntry<'a>],
    next: usize,
    mtime: u64,
    buf: Vec<u8>,
    pos: usize,
    stage: Stage,
    written: u64,
    finished_trailer: bool,
}

impl<'a> TarStream<'a> {
    pub(super) fn new(entries: &'a [ResolvedEntry<'a>], mtime: u64) -> Self {
        TarStream {
            entries,
            next: 0,
            mtime,
            buf: Vec::new(),
            pos: 0,
            stage: Stage::Buf,
            written: 0,
            finished_trailer: false,
        }
    }

    /// Prepares the next entry (or the trailer) into `buf`/`stage`. Returns false at the very end.
    fn advance(&mut self) -> io::Result<bool> {
        self.buf.clear();
        self.pos = 0;
        if self.next < self.entries.len() {
            let e = &self.entries[self.next];
            self.next += 1;
            match e.kind {
                EntryKind::File(c @ (Content::Bytes(_) | Content::Shared(_))) => {
                    let b = c.bytes().expect("in memory");
                    self.buf = entry_headers(e, b.len() as u64, self.mtime);
                    self.buf.extend_from_slice(b);
                    self.buf.resize(self.buf.len() + pad_len(b.len() as u64), 0);
                    self.stage = Stage::Buf;
                }
                EntryKind::File(Content::Path(p)) => {
                    let file = File::open(p).map_err(|err| with_path(err, "opening", p))?;
                    let size = e.size;
                    self.buf = entry_headers(e, size, self.mtime);
                    self.stage = Stage::File {
                        file,
                        left: size,
                        pad: pad_len(size),
                    };
                }
                _ => {
                    self.buf = entry_headers(e, 0, self.mtime);
                    self.stage = Stage::Buf;
                }
            }
            return Ok(true);
        }
        if !self.finished_trailer {
            self.finished_trailer = true;
            // Two zero blocks end the archive; GNU tar then pads to a whole record.
            let end = self.written + 2 * BLOCK as u64;
            let total = end.div_ceil(RECORD) * RECORD;
            self.buf.resize((total - self.written) as usize, 0);
            self.stage = Stage::Buf;
            return Ok(true);
        }
        self.stage = Stage::Done;
        Ok(false)
    }
}

fn with_path(err: io::Error, what: &str, p: &std::path::Path) -> io::Error {
    io::Error::new(err.kind(), format!("{what} {}: {err}", p.display()))
}

impl Read for TarStream<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            if self.pos < self.buf.len() {
                let n = (self.buf.len() - self.pos).min(out.len());
                out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
                self.pos += n;
                self.written += n as u64;
                return Ok(n);
            }
            match &mut self.stage {
                Stage::File { file, left, pad } => {
                    if *left > 0 {
                        let want = (*left).min(out.len() as u64) as usize;
                        let n = file.read(&mut out[..want])?;
                        if n == 0 {
                            return Err(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                format!(
                                    "{}: file shrank while it was being archived",
                                    self.entries[self.next - 1].source_name()
                                ),
                            ));
                        }
                        *left -= n as u64;
                        self.written += n as u64;
                        return Ok(n);
                    }
                    // A file that grew would silently lose its tail: refuse it instead.
                    let mut probe = [0u8; 1];
                    if file.read(&mut probe)? != 0 {
                        return Err(io::Error::other(format!(
                            "{}: file grew while it was being archived",
                            self.entries[self.next - 1].source_name()
                        )));
                    }
                    self.buf.clear();
                    self.buf.resize(*pad, 0);
                    self.pos = 0;
                    self.stage = Stage::Buf;
                }
                Stage::Buf => {
                    if !self.advance()? {
                        return Ok(0);
                    }
                }
                Stage::Done => return Ok(0),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_fields_match_gnu_tar() {
        let mut f = [0u8; 8];
        put_num(&mut f, 0o755);
        assert_eq!(&f, b"0000755\0");
        let mut f = [0u8; 12];
        put_num(&mut f, 1_700_000_000);
        assert_eq!(&f, b"14524770400\0");
        // 8 GiB does not fit in 11 octal digits: base-256.
        put_num(&mut f, 8 << 30);
        assert_eq!(f[0], 0x80);
        assert_eq!(&f[7..], &[0x02, 0, 0, 0, 0]);
    }
}
