//! The immutable sorted table (LevelDB's SSTable, as `tensorflow/core/lib/io/table.cc` writes it) that a
//! TensorBundle `.index` file is. Layout (<https://github.com/google/leveldb/blob/main/doc/table_format.md>):
//!
//! ```text
//! data block* | meta index block | index block | footer (48 bytes):
//!   meta index handle, index handle (varint offset + varint size each), zero padding to 40 bytes,
//!   magic 0xdb4775248b80fb57 (u64 LE)
//! block: entries | restart offsets (u32 LE each) | restart count (u32 LE)
//!   then a 5-byte trailer: compression type (0: none) | masked crc32c of block + type byte (u32 LE)
//! entry: shared key bytes (varint) | unshared (varint) | value length (varint) | key suffix | value
//! ```
//!
//! Written by hand: the crates that read LevelDB tables open whole databases, not one file's bytes. Every
//! length is checked against the file and every block's crc32c is verified.

/// The footer's magic number.
const MAGIC: u64 = 0xdb47_7524_8b80_fb57;
/// Footer size.
const FOOTER: usize = 48;

/// What is wrong with a table, with the byte offset it was found at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableError {
    /// Absolute offset in the file.
    pub offset: u64,
    /// What is wrong.
    pub what: String,
    /// A checksum mismatch: (stored, computed).
    pub crc: Option<(u32, u32)>,
}

fn err(offset: usize, what: impl Into<String>) -> TableError {
    TableError {
        offset: offset as u64,
        what: what.into(),
        crc: None,
    }
}

/// LevelDB's crc mask: rotate right by 15 and add a constant.
pub fn mask_crc(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Reads a varint (up to 64 bits) at `*at`, advancing it.
fn varint(buf: &[u8], at: &mut usize, base: usize) -> Result<u64, TableError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf
            .get(*at)
            .ok_or_else(|| err(base + *at, "varint past the end of its block"))?;
        *at += 1;
        v |= ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(err(base + *at, "varint longer than 10 bytes"))
}

/// A block handle: offset and size of a block in the file.
fn handle(buf: &[u8], at: &mut usize, base: usize) -> Result<(u64, u64), TableError> {
    Ok((varint(buf, at, base)?, varint(buf, at, base)?))
}

/// The contents of the block at `(offset, size)`, its trailer checked.
fn block(file: &[u8], (offset, size): (u64, u64)) -> Result<&[u8], TableError> {
    let start = usize::try_from(offset).map_err(|_| err(0, "block offset too large"))?;
    let len = usize::try_from(size).map_err(|_| err(0, "block size too large"))?;
    let end = start
        .checked_add(len)
        .and_then(|e| e.checked_add(5))
        .filter(|&e| e <= file.len())
        .ok_or_else(|| {
            err(
                start,
                format!("block of {size} bytes at {offset} runs past the end of the file"),
            )
        })?;
    let contents = &file[start..start + len];
    let kind = file[start + len];
    let stored = u32::from_le_bytes(file[end - 4..end].try_into().unwrap_or_default());
    let computed = mask_crc(crc32c::crc32c_append(crc32c::crc32c(contents), &[kind]));
    if stored != computed {
        return Err(TableError {
            offset: offset + size,
            what: format!("block at {offset}"),
            crc: Some((stored, computed)),
        });
    }
    if kind != 0 {
        return Err(err(
            start + len,
            format!("block compressed with type {kind} (only uncompressed tables are read)"),
        ));
    }
    Ok(contents)
}

/// The entries of one block as (key, value, absolute offset of the entry).
fn entries(contents: &[u8], base: usize, out: &mut Vec<Entry>) -> Result<(), TableError> {
    if contents.len() < 4 {
        return Err(err(base, "block shorter than its restart count"));
    }
    let n = u32::from_le_bytes(
        contents[contents.len() - 4..]
            .try_into()
            .unwrap_or_default(),
    ) as usize;
    let restarts = n
        .checked_mul(4)
        .and_then(|r| r.checked_add(4))
        .filter(|&r| r <= contents.len())
        .ok_or_else(|| err(base, format!("{n} restart points do not fit the block")))?;
    let data = &contents[..contents.len() - restarts];
    let mut at = 0;
    let mut key: Vec<u8> = Vec::new();
    while at < data.len() {
        let shared = varint(data, &mut at, base)? as usize;
        let unshared = varint(data, &mut at, base)? as usize;
        let vlen = varint(data, &mut at, base)? as usize;
        if shared > key.len() {
            return Err(err(
                base + at,
                "entry shares more key bytes than the previous key has",
            ));
        }
        let kend = at
            .checked_add(unshared)
            .filter(|&e| e <= data.len())
            .ok_or_else(|| err(base + at, "key past the end of its block"))?;
        let vend = kend
            .checked_add(vlen)
            .filter(|&e| e <= data.len())
            .ok_or_else(|| err(base + kend, "value past the end of its block"))?;
        key.truncate(shared);
        key.extend_from_slice(&data[at..kend]);
        out.push((key.clone(), base + kend..base + vend));
        at = vend;
    }
    Ok(())
}

/// One table entry: its key and the byte range of its value in the file.
pub type Entry = (Vec<u8>, std::ops::Range<usize>);

/// Every entry of the table in `file`, in key order.
pub fn read(file: &[u8]) -> Result<Vec<Entry>, TableError> {
    if file.len() < FOOTER {
        return Err(err(
            0,
            format!("{} bytes, shorter than a table footer", file.len()),
        ));
    }
    let foot = &file[file.len() - FOOTER..];
    let magic = u64::from_le_bytes(foot[40..].try_into().unwrap_or_default());
    if magic != MAGIC {
        return Err(err(
            file.len() - 8,
            "no table magic at the end (not a TensorBundle index)",
        ));
    }
    let mut at = 0;
    let fbase = file.len() - FOOTER;
    let _meta = handle(foot, &mut at, fbase)?;
    let index = handle(foot, &mut at, fbase)?;
    let index_block = block(file, index)?;
    let mut handles = Vec::new();
    entries(index_block, index.0 as usize, &mut handles)?;
    let mut out = Vec::new();
    for (_, range) in handles {
        let mut at = 0;
        let h = handle(&file[range.clone()], &mut at, range.start)?;
        let contents = block(file, h)?;
        entries(contents, h.0 as usize, &mut out)?;
    }
    Ok(out)
}
