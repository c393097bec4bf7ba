//! A write-once FAT12/FAT16/FAT32 image writer (Microsoft's FAT specification, "FAT: General Overview of
//! On-Disk Format" 1.03): boot sector + FSInfo, two FATs, root directory, then every directory and file in
//! one contiguous cluster run each, written strictly front to back.
//!
//! The volume is as small as its content: the FAT type and cluster size are the first (smallest) ones
//! whose cluster count range holds the content, so no volume is padded with free clusters to reach a
//! type's minimum (FAT16 needs 4,085 clusters, 2 MiB at 512 bytes: a few-KB seed used to be 3 MiB).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};

use super::{SeedError, Source};

const SECTOR: u64 = 512;
const DIR_ENTRY: u64 = 32;
/// Keep the cluster count this far away from the FAT12/16/32 boundaries, as mkfs.fat does: drivers that
/// round differently must still agree on the type.
const MARGIN: u64 = 16;
const ATTR_DIR: u8 = 0x10;
const ATTR_ARCHIVE: u8 = 0x20;
const ATTR_VOLUME_ID: u8 = 0x08;
const ATTR_LFN: u8 = 0x0f;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FatType {
    /// Seeds up to 16 MiB (4 KiB clusters at most): a node's documents and small layers.
    Fat12,
    Fat16,
    Fat32,
}

impl FatType {
    fn cluster_range(self) -> (u64, u64) {
        match self {
            // FAT12 has no lower bound; one cluster keeps the data area non-empty.
            FatType::Fat12 => (1, 4084 - MARGIN),
            FatType::Fat16 => (4085 + MARGIN, 65524 - MARGIN),
            FatType::Fat32 => (65525 + MARGIN, 0x0FFF_FFF5 - MARGIN),
        }
    }
    /// Bytes of a FAT with `entries` entries (FAT12 packs two entries into three bytes).
    fn table_bytes(self, entries: u64) -> u64 {
        match self {
            FatType::Fat12 => (entries * 3).div_ceil(2),
            FatType::Fat16 => entries * 2,
            FatType::Fat32 => entries * 4,
        }
    }
}

#[derive(Debug)]
enum Kind {
    Dir { children: Vec<usize> },
    File { index: usize, size: u64 },
}

#[derive(Debug)]
struct Node {
    name: String,
    parent: usize,
    kind: Kind,
    /// First cluster (0: none, i.e. the FAT16 root or an empty file).
    first: u32,
    clusters: u64,
    short: [u8; 11],
}

#[derive(Debug, Clone, Copy)]
struct Geometry {
    fat: FatType,
    spc: u64,
    reserved: u64,
    fat_sectors: u64,
    root_entries: u64,
    clusters: u64,
}

impl Geometry {
    fn cluster_bytes(&self) -> u64 {
        self.spc * SECTOR
    }
    fn root_dir_sectors(&self) -> u64 {
        self.root_entries * DIR_ENTRY / SECTOR
    }
    fn data_start(&self) -> u64 {
        self.reserved + 2 * self.fat_sectors + self.root_dir_sectors()
    }
    fn total_sectors(&self) -> u64 {
        self.data_start() + self.clusters * self.spc
    }

    fn new(fat: FatType, spc: u64, needed: u64, root_entries: u64) -> Option<Geometry> {
        let (min, max) = fat.cluster_range();
        if needed > max {
            return None;
        }
        let clusters = needed.max(min);
        let fat_sectors = fat.table_bytes(clusters + 2).div_ceil(SECTOR);
        let min_reserved = match fat {
            FatType::Fat12 | FatType::Fat16 => 1,
            FatType::Fat32 => 32,
        };
        // Start the data area on a 4 KiB (or cluster) boundary so file contents are page-aligned.
        let align = spc.max(8);
        let unaligned = min_reserved + 2 * fat_sectors + root_entries * DIR_ENTRY / SECTOR;
        let reserved = min_reserved + (align - unaligned % align) % align;
        let g = Geometry {
            fat,
            spc,
            reserved,
            fat_sectors,
            root_entries,
            clusters,
        };
        (g.total_sectors() <= u64::from(u32::MAX)).then_some(g)
    }
}

/// A planned image: tree, geometry and cluster allocation. Writing it needs only the sources.
pub(super) struct Image {
    nodes: Vec<Node>,
    geo: Geometry,
    /// Allocation order: the cluster runs as they appear in the data area.
    order: Vec<usize>,
    used_clusters: u64,
    mtime: (u16, u16),
    label: [u8; 11],
    serial: u32,
}

/// Checks one path component of a long name.
fn check_component(full: &str, c: &str) -> Result<(), SeedError> {
    let bad = |reason| SeedError::InvalidName {
        name: full.to_string(),
        reason,
    };
    if c.is_empty() {
        return Err(bad(
            "empty path component (leading, trailing or double slash)",
        ));
    }
    if c == "." || c == ".." {
        return Err(bad("has a . or .. component"));
    }
    if c.encode_utf16().count() > 255 {
        return Err(bad("a component is longer than 255 characters"));
    }
    if c.ends_with('.') || c.ends_with(' ') {
        return Err(bad("a component ends with a dot or space, which FAT drops"));
    }
    if c.chars()
        .any(|ch| ch < ' ' || "\"*:<>?\\|\u{7f}".contains(ch))
    {
        return Err(bad(
            "contains a character FAT does not allow (control, \" * : < > ? \\ |)",
        ));
    }
    Ok(())
}

fn lfn_entries(name: &str) -> u64 {
    (name.encode_utf16().count() as u64).div_ceil(13)
}

/// The 8.3 basis of a long name (upper case, invalid characters replaced), as Windows derives it.
fn short_basis(name: &str) -> (String, String) {
    let clean = |s: &str| -> String {
        s.chars()
            .filter(|c| *c != ' ' && *c != '.')
            .map(|c| {
                let c = c.to_ascii_uppercase();
                if c.is_ascii_alphanumeric() || "!#$%&'()-@^_`{}~".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let trimmed = name.trim_start_matches('.');
    let (base, ext) = match trimmed.rfind('.') {
        Some(i) if i > 0 => (&trimmed[..i], &trimmed[i + 1..]),
        _ => (trimmed, ""),
    };
    let mut ext = clean(ext);
    ext.truncate(3);
    (clean(base), ext)
}

/// Unique short names `BASIS~N.EXT` for every entry of one directory, in child order.
fn short_names(names: &[&str]) -> Vec<[u8; 11]> {
    let mut used: BTreeSet<[u8; 11]> = BTreeSet::new();
    names
        .iter()
        .map(|n| {
            let (base, ext) = short_basis(n);
            let base = if base.is_empty() {
                "_".to_string()
            } else {
                base
            };
            (1u32..)
                .map(|i| {
                    let tail = format!("~{i}");
                    let keep = base.len().min(8 - tail.len());
                    let mut s = [b' '; 11];
                    let b = format!("{}{tail}", &base[..keep]);
                    s[..b.len()].copy_from_slice(b.as_bytes());
                    s[8..8 + ext.len()].copy_from_slice(ext.as_bytes());
                    s
                })
                .find(|s| used.insert(*s))
                .expect("a free ~N exists")
        })
        .collect()
}

fn lfn_checksum(short: &[u8; 11]) -> u8 {
    short.iter().fold(0u8, |sum, &b| {
        ((sum & 1) << 7).wrapping_add(sum >> 1).wrapping_add(b)
    })
}

/// FAT's local-time stamp of `mtime`, read as UTC (a seed has no time zone), clamped to 1980..=2107.
fn fat_time(mtime: u64) -> (u16, u16) {
    const MIN: i64 = 315_532_800; // 1980-01-01
    const MAX: i64 = 4_354_819_198; // 2107-12-31 23:59:58
    let t = (mtime.min(MAX as u64) as i64).max(MIN);
    let dt = time::OffsetDateTime::from_unix_timestamp(t).expect("clamped into range");
    let date =
        ((dt.year() - 1980) as u16) << 9 | (u8::from(dt.month()) as u16) << 5 | dt.day() as u16;
    let tm = (dt.hour() as u16) << 11 | (dt.minute() as u16) << 5 | (dt.second() as u16 / 2);
    (date, tm)
}

impl Image {
    pub(super) fn plan(
        files: &[(String, Source)],
        mtime: u64,
        label: &str,
        serial: u32,
    ) -> Result<Image, SeedError> {
        let mut nodes = vec![Node {
            name: String::new(),
            parent: 0,
            kind: Kind::Dir {
                children: Vec::new(),
            },
            first: 0,
            clusters: 0,
            short: [b' '; 11],
        }];
        // Case-folded names per directory: FAT lookups are case-insensitive.
        let mut index: BTreeMap<(usize, String), usize> = BTreeMap::new();
        for (i, (name, src)) in files.iter().enumerate() {
            let parts: Vec<&str> = name.split('/').collect();
            for p in &parts {
                check_component(name, p)?;
            }
            let size = match src {
                Source::Bytes(b) => b.len() as u64,
                Source::Path(p) => {
                    let m = fs::metadata(p).map_err(|source| SeedError::Source {
                        name: name.clone(),
                        file: p.clone(),
                        source,
                    })?;
                    if !m.is_file() {
                        return Err(SeedError::Source {
                            name: name.clone(),
                            file: p.clone(),
                            source: io::Error::other("not a regular file"),
                        });
                    }
                    m.len()
                }
            };
            if size > u64::from(u32::MAX) {
                return Err(SeedError::TooLarge {
                    name: name.clone(),
                    bytes: size,
                });
            }
            let mut dir = 0usize;
            for (depth, p) in parts.iter().enumerate() {
                let last = depth + 1 == parts.len();
                let key = (dir, p.to_uppercase());
                match (index.get(&key).copied(), last) {
                    (Some(_), true) => return Err(SeedError::Duplicate { name: name.clone() }),
                    (Some(n), false) => {
                        if !matches!(nodes[n].kind, Kind::Dir { .. }) {
                            return Err(SeedError::FileIsDirectory {
                                name: name.clone(),
                                parent: parts[..=depth].join("/"),
                            });
                        }
                        dir = n;
                    }
                    (None, _) => {
                        let n = nodes.len();
                        let kind = if last {
                            Kind::File { index: i, size }
                        } else {
                            Kind::Dir {
                                children: Vec::new(),
                            }
                        };
                        nodes.push(Node {
                            name: p.to_string(),
                            parent: dir,
                            kind,
                            first: 0,
                            clusters: 0,
                            short: [b' '; 11],
                        });
                        index.insert(key, n);
                        if let Kind::Dir { children } = &mut nodes[dir].kind {
                            children.push(n);
                        }
                        dir = n;
                    }
                }
            }
        }
        // Children in name order, short names per directory in that order.
        for d in 0..nodes.len() {
            let Kind::Dir { children } = &nodes[d].kind else {
                continue;
            };
            let mut children = children.clone();
            children.sort_by(|a, b| nodes[*a].name.cmp(&nodes[*b].name));
            let names: Vec<&str> = children.iter().map(|c| nodes[*c].name.as_str()).collect();
            let shorts = short_names(&names);
            for (c, s) in children.iter().zip(shorts) {
                nodes[*c].short = s;
            }
            nodes[d].kind = Kind::Dir { children };
        }
        // Pre-order: directories first (so the tree is at the front of the volume), then files.
        let mut preorder = Vec::new();
        let mut stack = vec![0usize];
        while let Some(n) = stack.pop() {
            preorder.push(n);
            if let Kind::Dir { children } = &nodes[n].kind {
                stack.extend(children.iter().rev());
            }
        }
        // Directory entries per node (0 for files).
        let entries: Vec<u64> = (0..nodes.len())
            .map(|n| {
                let Kind::Dir { children } = &nodes[n].kind else {
                    return 0;
                };
                let own = if n == 0 { 1 } else { 2 }; // volume label, or . and ..
                own + children
                    .iter()
                    .map(|c| lfn_entries(&nodes[*c].name) + 1)
                    .sum::<u64>()
            })
            .collect();
        let dir_entries = |n: usize| entries[n];
        // The FAT12/16 root region holds exactly the root's entries, in whole sectors (16 entries, what
        // Linux requires of its size): the image is written once and mounted read-only, so nothing needs
        // room to grow.
        let root_fixed = dir_entries(0).div_ceil(16) * 16;
        let fixed_root = |fat: FatType| fat != FatType::Fat32;

        let needed_for = |fat: FatType, cluster: u64| -> u64 {
            preorder
                .iter()
                .map(|&n| match &nodes[n].kind {
                    Kind::Dir { .. } if n == 0 && fixed_root(fat) => 0,
                    Kind::Dir { .. } => (dir_entries(n) * DIR_ENTRY).div_ceil(cluster).max(1),
                    Kind::File { size, .. } => size.div_ceil(cluster),
                })
                .sum()
        };
        // Smallest first, each range starting where the previous one ends, so the first that fits wastes
        // no clusters: FAT12 up to ~16 MiB, FAT16 up to ~256 MiB (clusters up to 4 KiB), FAT32 beyond.
        let candidates = [
            (FatType::Fat12, 1),
            (FatType::Fat12, 2),
            (FatType::Fat12, 4),
            (FatType::Fat12, 8),
            (FatType::Fat16, 1),
            (FatType::Fat16, 2),
            (FatType::Fat16, 4),
            (FatType::Fat16, 8),
            (FatType::Fat32, 8),
            (FatType::Fat32, 16),
            (FatType::Fat32, 32),
            (FatType::Fat32, 64),
        ];
        let geo = candidates
            .iter()
            .find_map(|&(fat, spc)| {
                let root = if fixed_root(fat) { root_fixed } else { 0 };
                // The boot sector counts root entries in 16 bits: a bigger root only fits FAT32.
                if root > 0xfff0 {
                    return None;
                }
                Geometry::new(fat, spc, needed_for(fat, spc * SECTOR), root)
            })
            .ok_or(SeedError::VolumeTooLarge)?;

        // Allocate one contiguous run per directory, then per file.
        let cluster = geo.cluster_bytes();
        let mut next: u64 = 2;
        let mut order = Vec::new();
        let (dirs, files_): (Vec<usize>, Vec<usize>) = preorder
            .iter()
            .partition(|&&n| matches!(nodes[n].kind, Kind::Dir { .. }));
        for n in dirs.into_iter().chain(files_) {
            let count = match &nodes[n].kind {
                Kind::Dir { .. } if n == 0 && fixed_root(geo.fat) => 0,
                Kind::Dir { .. } => (dir_entries(n) * DIR_ENTRY).div_ceil(cluster).max(1),
                Kind::File { size, .. } => size.div_ceil(cluster),
            };
            if count > 0 {
                nodes[n].first = next as u32;
                nodes[n].clusters = count;
                next += count;
                order.push(n);
            }
        }
        let mut lbl = [b' '; 11];
        let l = label.as_bytes();
        lbl[..l.len().min(11)].copy_from_slice(&l[..l.len().min(11)]);
        Ok(Image {
            nodes,
            geo,
            order,
            used_clusters: next - 2,
            mtime: fat_time(mtime),
            label: lbl,
            serial,
        })
    }

    pub(super) fn bytes(&self) -> u64 {
        self.geo.total_sectors() * SECTOR
    }
    pub(super) fn fat_type(&self) -> FatType {
        self.geo.fat
    }
    pub(super) fn serial(&self) -> u32 {
        self.serial
    }

    fn boot_sector(&self) -> [u8; 512] {
        let g = &self.geo;
        let mut b = [0u8; 512];
        let total = g.total_sectors();
        b[0..3].copy_from_slice(match g.fat {
            FatType::Fat12 | FatType::Fat16 => &[0xeb, 0x3c, 0x90],
            FatType::Fat32 => &[0xeb, 0x58, 0x90],
        });
        b[3..11].copy_from_slice(b"KIMAGE  ");
        b[11..13].copy_from_slice(&(SECTOR as u16).to_le_bytes());
        b[13] = g.spc as u8;
        b[14..16].copy_from_slice(&(g.reserved as u16).to_le_bytes());
        b[16] = 2;
        b[17..19].copy_from_slice(&(g.root_entries as u16).to_le_bytes());
        if g.fat != FatType::Fat32 && total < 0x10000 {
            b[19..21].copy_from_slice(&(total as u16).to_le_bytes());
        } else {
            b[32..36].copy_from_slice(&(total as u32).to_le_bytes());
        }
        b[21] = 0xf8;
        b[24..26].copy_from_slice(&63u16.to_le_bytes());
        b[26..28].copy_from_slice(&255u16.to_le_bytes());
        let ext = match g.fat {
            FatType::Fat12 | FatType::Fat16 => {
                b[22..24].copy_from_slice(&(g.fat_sectors as u16).to_le_bytes());
                36
            }
            FatType::Fat32 => {
                b[36..40].copy_from_slice(&(g.fat_sectors as u32).to_le_bytes());
                b[44..48].copy_from_slice(&self.nodes[0].first.to_le_bytes());
                b[48..50].copy_from_slice(&1u16.to_le_bytes()); // FSInfo sector
                b[50..52].copy_from_slice(&6u16.to_le_bytes()); // backup boot sector
                64
            }
        };
        b[ext] = 0x80; // drive number
        b[ext + 2] = 0x29; // extended boot signature: serial, label, type follow
        b[ext + 3..ext + 7].copy_from_slice(&self.serial.to_le_bytes());
        b[ext + 7..ext + 18].copy_from_slice(&self.label);
        b[ext + 18..ext + 26].copy_from_slice(match g.fat {
            FatType::Fat12 => b"FAT12   ",
            FatType::Fat16 => b"FAT16   ",
            FatType::Fat32 => b"FAT32   ",
        });
        b[510] = 0x55;
        b[511] = 0xaa;
        b
    }

    fn fsinfo(&self) -> [u8; 512] {
        let mut s = [0u8; 512];
        s[0..4].copy_from_slice(&0x4161_5252u32.to_le_bytes());
        s[484..488].copy_from_slice(&0x6141_7272u32.to_le_bytes());
        let free = self.geo.clusters - self.used_clusters;
        s[488..492].copy_from_slice(&(free as u32).to_le_bytes());
        let hint = if free > 0 {
            (2 + self.used_clusters) as u32
        } else {
            0xffff_ffff
        };
        s[492..496].copy_from_slice(&hint.to_le_bytes());
        s[508..512].copy_from_slice(&0xaa55_0000u32.to_le_bytes());
        s
    }

    fn reserved_area(&self) -> Vec<u8> {
        let mut r = vec![0u8; (self.geo.reserved * SECTOR) as usize];
        let boot = self.boot_sector();
        r[..512].copy_from_slice(&boot);
        if self.geo.fat == FatType::Fat32 {
            let info = self.fsinfo();
            r[512..1024].copy_from_slice(&info);
            r[6 * 512..7 * 512].copy_from_slice(&boot);
            r[7 * 512..8 * 512].copy_from_slice(&info);
        }
        r
    }

    fn fat_table(&self) -> Vec<u8> {
        let g = &self.geo;
        let mut t = vec![0u8; (g.fat_sectors * SECTOR) as usize];
        let mut put = |i: u64, v: u32| match g.fat {
            // Even entries take a byte and the low nibble of the next; odd ones the high nibble and a byte.
            FatType::Fat12 => {
                let o = (i * 3 / 2) as usize;
                if i.is_multiple_of(2) {
                    t[o] = v as u8;
                    t[o + 1] = t[o + 1] & 0xf0 | (v >> 8) as u8 & 0x0f;
                } else {
                    t[o] = t[o] & 0x0f | (v << 4) as u8;
                    t[o + 1] = (v >> 4) as u8;
                }
            }
            FatType::Fat16 => {
                t[(i * 2) as usize..(i * 2 + 2) as usize].copy_from_slice(&(v as u16).to_le_bytes())
            }
            FatType::Fat32 => {
                t[(i * 4) as usize..(i * 4 + 4) as usize].copy_from_slice(&v.to_le_bytes())
            }
        };
        let eoc = match g.fat {
            FatType::Fat12 => 0xfff,
            FatType::Fat16 => 0xffff,
            FatType::Fat32 => 0x0fff_ffff,
        };
        // Entry 0 carries the media byte; entry 1's top bits say "cleanly unmounted, no errors" (FAT16/32).
        put(0, eoc & !0xff | 0xf8);
        put(1, eoc);
        for &n in &self.order {
            let node = &self.nodes[n];
            let first = u64::from(node.first);
            for c in first..first + node.clusters {
                put(
                    c,
                    if c + 1 == first + node.clusters {
                        eoc
                    } else {
                        (c + 1) as u32
                    },
                );
            }
        }
        t
    }

    fn short_entry(&self, name: &[u8; 11], attr: u8, first: u32, size: u32) -> [u8; 32] {
        let (date, tm) = self.mtime;
        let mut e = [0u8; 32];
        e[..11].copy_from_slice(name);
        e[11] = attr;
        e[14..16].copy_from_slice(&tm.to_le_bytes());
        e[16..18].copy_from_slice(&date.to_le_bytes());
        e[18..20].copy_from_slice(&date.to_le_bytes());
        e[20..22].copy_from_slice(&((first >> 16) as u16).to_le_bytes());
        e[22..24].copy_from_slice(&tm.to_le_bytes());
        e[24..26].copy_from_slice(&date.to_le_bytes());
        e[26..28].copy_from_slice(&(first as u16).to_le_bytes());
        e[28..32].copy_from_slice(&size.to_le_bytes());
        e
    }

    /// The directory's entries, padded to its cluster run (or the FAT16 root region).
    fn dir_bytes(&self, n: usize) -> Vec<u8> {
        let node = &self.nodes[n];
        let Kind::Dir { children } = &node.kind else {
            unreachable!("only directories have entries")
        };
        let mut out = Vec::new();
        if n == 0 {
            out.extend_from_slice(&self.short_entry(&self.label, ATTR_VOLUME_ID, 0, 0));
        } else {
            let parent = if node.parent == 0 {
                0
            } else {
                self.nodes[node.parent].first
            };
            out.extend_from_slice(&self.short_entry(b".          ", ATTR_DIR, node.first, 0));
            out.extend_from_slice(&self.short_entry(b"..         ", ATTR_DIR, parent, 0));
        }
        for &c in children {
            let child = &self.nodes[c];
            let units: Vec<u16> = child.name.encode_utf16().collect();
            let count = units.len().div_ceil(13);
            let sum = lfn_checksum(&child.short);
            for seq in (1..=count).rev() {
                let mut e = [0u8; 32];
                e[0] = seq as u8 | if seq == count { 0x40 } else { 0 };
                e[11] = ATTR_LFN;
                e[13] = sum;
                let slots: [usize; 13] = [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30];
                for (k, off) in slots.iter().enumerate() {
                    let i = (seq - 1) * 13 + k;
                    // The name ends with one NUL unit, then 0xFFFF padding.
                    let u = match i.cmp(&units.len()) {
                        std::cmp::Ordering::Less => units[i],
                        std::cmp::Ordering::Equal => 0,
                        std::cmp::Ordering::Greater => 0xffff,
                    };
                    e[*off..*off + 2].copy_from_slice(&u.to_le_bytes());
                }
                out.extend_from_slice(&e);
            }
            let (attr, size) = match child.kind {
                Kind::Dir { .. } => (ATTR_DIR, 0),
                Kind::File { size, .. } => (ATTR_ARCHIVE, size as u32),
            };
            out.extend_from_slice(&self.short_entry(&child.short, attr, child.first, size));
        }
        let len = if n == 0 && self.geo.fat != FatType::Fat32 {
            self.geo.root_entries * DIR_ENTRY
        } else {
            node.clusters * self.geo.cluster_bytes()
        };
        out.resize(len as usize, 0);
        out
    }

    pub(super) fn write<W: Write>(
        &self,
        w: &mut W,
        files: &[(String, Source)],
    ) -> Result<(), SeedError> {
        let wr = |source| SeedError::Io {
            action: "writing seed image".into(),
            source,
        };
        w.write_all(&self.reserved_area()).map_err(wr)?;
        let fat = self.fat_table();
        w.write_all(&fat).map_err(wr)?;
        w.write_all(&fat).map_err(wr)?;
        if self.geo.fat != FatType::Fat32 {
            w.write_all(&self.dir_bytes(0)).map_err(wr)?;
        }
        let cluster = self.geo.cluster_bytes();
        // Grown to the largest file streamed so far (at most 1 MiB): a seed of small layers, written
        // 10,000 times in a build, should not clear a megabyte each time.
        let mut buf = Vec::new();
        for &n in &self.order {
            let node = &self.nodes[n];
            match node.kind {
                Kind::Dir { .. } => w.write_all(&self.dir_bytes(n)).map_err(wr)?,
                Kind::File { index, size } => {
                    let (name, src) = &files[index];
                    match src {
                        Source::Bytes(b) => w.write_all(b).map_err(wr)?,
                        Source::Path(p) => {
                            let src_err = |source| SeedError::Source {
                                name: name.clone(),
                                file: p.clone(),
                                source,
                            };
                            let mut f = File::open(p).map_err(src_err)?;
                            let want = size.clamp(1, 1 << 20) as usize;
                            if buf.len() < want {
                                buf.resize(want, 0);
                            }
                            let mut left = size;
                            while left > 0 {
                                let want = left.min(buf.len() as u64) as usize;
                                let got = f.read(&mut buf[..want]).map_err(src_err)?;
                                if got == 0 {
                                    return Err(SeedError::SourceChanged {
                                        name: name.clone(),
                                        file: p.clone(),
                                    });
                                }
                                w.write_all(&buf[..got]).map_err(wr)?;
                                left -= got as u64;
                            }
                            if f.read(&mut buf[..1]).map_err(src_err)? != 0 {
                                return Err(SeedError::SourceChanged {
                                    name: name.clone(),
                                    file: p.clone(),
                                });
                            }
                        }
                    }
                    write_zeros(w, (cluster - size % cluster) % cluster).map_err(wr)?;
                }
            }
        }
        // Unused clusters (only where FAT32's minimum count exceeds the content) are zeros.
        write_zeros(w, (self.geo.clusters - self.used_clusters) * cluster).map_err(wr)
    }
}

/// Zeros as bytes of the image (a sparse writer turns whole blocks of them into holes).
fn write_zeros<W: Write>(w: &mut W, mut left: u64) -> io::Result<()> {
    const ZEROS: [u8; 4096] = [0; 4096];
    while left > 0 {
        let n = left.min(ZEROS.len() as u64) as usize;
        w.write_all(&ZEROS[..n])?;
        left -= n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_unique_and_valid() {
        let names = [
            "user-data",
            "meta-data",
            "network-config",
            "layers",
            "aaaaaaaaaa.tar.gz",
            "aaaaaaaaab.tar.gz",
        ];
        let s = short_names(&names);
        let txt: Vec<String> = s
            .iter()
            .map(|x| String::from_utf8_lossy(x).into_owned())
            .collect();
        assert_eq!(
            txt,
            [
                "USER-D~1   ",
                "META-D~1   ",
                "NETWOR~1   ",
                "LAYERS~1   ",
                "AAAAAA~1GZ ",
                "AAAAAA~2GZ "
            ]
        );
        let many: Vec<String> = (0..120).map(|i| format!("{:064x}.tar.gz", i)).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        let s = short_names(&refs);
        assert_eq!(s.iter().collect::<BTreeSet<_>>().len(), 120);
        assert_eq!(&s[119][..8], b"0000~120");
    }

    #[test]
    fn fat_time_of_a_known_instant() {
        // 2023-11-14 22:13:20 UTC
        let (d, t) = fat_time(1_700_000_000);
        assert_eq!(d, (43 << 9) | (11 << 5) | 14);
        assert_eq!(t, (22 << 11) | (13 << 5) | 10);
        assert_eq!(fat_time(0).0, (1 << 5) | 1);
    }
}
