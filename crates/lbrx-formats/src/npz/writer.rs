//! Writing `.npz` archives as `numpy.savez` / `mlx.core.savez` do: one stored (uncompressed) `NAME.npy` member
//! per array, each `.npy` header padded to 64 bytes, zip64 size fields on every entry (numpy forces them), a
//! zip64 end record. The layout is fixed before any data is written; the CRC-32 of each member is only known
//! once its bytes are, so the layout lists where it goes (local header and central directory) for the writer to
//! fill in at the end.
//!
//! Zip: <https://pkware.cachefly.net/webdocs/casestudies/APPNOTE.TXT> (4.3.7 local header, 4.3.12 central
//! directory, 4.3.14-16 zip64 end records, 4.5.3 zip64 extra field).

use super::npy_descr;
use lbrx_core::{DType, Error, Result};

/// One array to store.
#[derive(Debug, Clone)]
pub struct NpzMember {
    /// Array name (the member is `NAME.npy`).
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Shape.
    pub shape: Vec<u64>,
}

/// Where one member's bytes go.
#[derive(Debug, Clone)]
pub struct MemberLayout {
    /// Offset of its local header; the header and the `.npy` header (`prefix`) are written there.
    pub header_offset: u64,
    /// The local file header and `.npy` header bytes (CRC left zero).
    pub prefix: Vec<u8>,
    /// Offset of the array's raw bytes.
    pub data_offset: u64,
    /// Raw byte length of the array.
    pub data_len: u64,
    /// The member's stored bytes (the `.npy` header and the array): what its CRC-32 covers.
    pub crc_range: (u64, u64),
    /// Offsets where the member's CRC-32 (little-endian u32) goes.
    pub crc_at: [u64; 2],
}

/// A planned `.npz` file.
#[derive(Debug, Clone)]
pub struct NpzLayout {
    /// Per member, in order.
    pub members: Vec<MemberLayout>,
    /// Offset of the central directory and end records.
    pub tail_offset: u64,
    /// Central directory, zip64 end record and locator, end record (CRCs left zero).
    pub tail: Vec<u8>,
    /// Total file size.
    pub size: u64,
}

/// The `.npy` header for an array (format 1.0, or 2.0 when longer than 65535 bytes), padded with spaces and a
/// newline to a multiple of 64 bytes, as numpy writes it.
pub fn npy_header(dtype: DType, shape: &[u64]) -> Result<Vec<u8>> {
    let descr = npy_descr(dtype).ok_or_else(|| {
        Error::Invalid(format!(
            "NumPy has no {dtype} arrays; pass --dtype f16, f32 or f64"
        ))
    })?;
    let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    for (major, len_bytes) in [(1u8, 2usize), (2, 4)] {
        let fixed = 6 + 2 + len_bytes;
        let total = (fixed + dict.len() + 1).div_ceil(64) * 64;
        let hlen = total - fixed;
        if len_bytes == 2 && hlen > u16::MAX as usize {
            continue;
        }
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(b"\x93NUMPY");
        out.extend_from_slice(&[major, 0]);
        if len_bytes == 2 {
            out.extend_from_slice(&(hlen as u16).to_le_bytes());
        } else {
            out.extend_from_slice(&(hlen as u32).to_le_bytes());
        }
        out.extend_from_slice(dict.as_bytes());
        out.resize(total - 1, b' ');
        out.push(b'\n');
        return Ok(out);
    }
    Err(Error::Invalid("array header too long".into()))
}

/// DOS date 1980-01-01 (the zip epoch; a fixed time keeps outputs reproducible).
const DOS_DATE: u16 = 0x0021;
const ZIP64: u16 = 45;

/// Lays out an archive of `members` (stored, zip64).
pub fn npz_layout(members: &[NpzMember]) -> Result<NpzLayout> {
    let mut out = Vec::with_capacity(members.len());
    let mut central = Vec::new();
    let mut at = 0u64;
    for m in members {
        let name = format!("{}.npy", m.name);
        if name.len() > u16::MAX as usize {
            return Err(Error::Invalid(format!("array name '{}' too long", m.name)));
        }
        let npy = npy_header(m.dtype, &m.shape)?;
        let data_len = m
            .dtype
            .byte_len(&m.shape)
            .ok_or_else(|| Error::Invalid(format!("array '{}': shape overflows", m.name)))?;
        let stored = npy.len() as u64 + data_len;
        let mut local = Vec::with_capacity(30 + name.len() + 20 + npy.len());
        local.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        local.extend_from_slice(&ZIP64.to_le_bytes());
        local.extend_from_slice(&0u16.to_le_bytes()); // flags
        local.extend_from_slice(&0u16.to_le_bytes()); // stored
        local.extend_from_slice(&0u16.to_le_bytes()); // time
        local.extend_from_slice(&DOS_DATE.to_le_bytes());
        local.extend_from_slice(&0u32.to_le_bytes()); // CRC-32, filled in later
        local.extend_from_slice(&u32::MAX.to_le_bytes());
        local.extend_from_slice(&u32::MAX.to_le_bytes());
        local.extend_from_slice(&(name.len() as u16).to_le_bytes());
        local.extend_from_slice(&20u16.to_le_bytes());
        local.extend_from_slice(name.as_bytes());
        local.extend_from_slice(&1u16.to_le_bytes());
        local.extend_from_slice(&16u16.to_le_bytes());
        local.extend_from_slice(&stored.to_le_bytes());
        local.extend_from_slice(&stored.to_le_bytes());
        let header_len = local.len() as u64;
        local.extend_from_slice(&npy);

        let cd_at = central.len() as u64;
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&(0x0300 | ZIP64).to_le_bytes()); // made by: Unix, 4.5
        central.extend_from_slice(&ZIP64.to_le_bytes());
        central.extend_from_slice(&0u16.to_le_bytes());
        central.extend_from_slice(&0u16.to_le_bytes());
        central.extend_from_slice(&0u16.to_le_bytes());
        central.extend_from_slice(&DOS_DATE.to_le_bytes());
        central.extend_from_slice(&0u32.to_le_bytes()); // CRC-32, filled in later
        central.extend_from_slice(&u32::MAX.to_le_bytes());
        central.extend_from_slice(&u32::MAX.to_le_bytes());
        central.extend_from_slice(&(name.len() as u16).to_le_bytes());
        central.extend_from_slice(&28u16.to_le_bytes());
        central.extend_from_slice(&0u16.to_le_bytes()); // comment
        central.extend_from_slice(&0u16.to_le_bytes()); // disk
        central.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
        central.extend_from_slice(&(0o100644u32 << 16).to_le_bytes());
        central.extend_from_slice(&u32::MAX.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
        central.extend_from_slice(&1u16.to_le_bytes());
        central.extend_from_slice(&24u16.to_le_bytes());
        central.extend_from_slice(&stored.to_le_bytes());
        central.extend_from_slice(&stored.to_le_bytes());
        central.extend_from_slice(&at.to_le_bytes());

        out.push(MemberLayout {
            header_offset: at,
            data_offset: at + local.len() as u64,
            data_len,
            crc_range: (at + header_len, stored),
            crc_at: [at + 14, cd_at + 16], // the second is relative to the tail until fixed below
            prefix: local,
        });
        at += header_len + stored;
    }
    let tail_offset = at;
    for m in &mut out {
        m.crc_at[1] += tail_offset;
    }
    let mut tail = central;
    let cd_size = tail.len() as u64;
    let n = members.len() as u64;
    let eocd64_at = tail_offset + cd_size;
    tail.extend_from_slice(&0x0606_4b50u32.to_le_bytes());
    tail.extend_from_slice(&44u64.to_le_bytes());
    tail.extend_from_slice(&(0x0300 | ZIP64).to_le_bytes());
    tail.extend_from_slice(&ZIP64.to_le_bytes());
    tail.extend_from_slice(&0u32.to_le_bytes());
    tail.extend_from_slice(&0u32.to_le_bytes());
    tail.extend_from_slice(&n.to_le_bytes());
    tail.extend_from_slice(&n.to_le_bytes());
    tail.extend_from_slice(&cd_size.to_le_bytes());
    tail.extend_from_slice(&tail_offset.to_le_bytes());
    tail.extend_from_slice(&0x0706_4b50u32.to_le_bytes());
    tail.extend_from_slice(&0u32.to_le_bytes());
    tail.extend_from_slice(&eocd64_at.to_le_bytes());
    tail.extend_from_slice(&1u32.to_le_bytes());
    tail.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    tail.extend_from_slice(&0u16.to_le_bytes());
    tail.extend_from_slice(&0u16.to_le_bytes());
    tail.extend_from_slice(&(n.min(0xFFFF) as u16).to_le_bytes());
    tail.extend_from_slice(&(n.min(0xFFFF) as u16).to_le_bytes());
    tail.extend_from_slice(&(cd_size.min(0xFFFF_FFFF) as u32).to_le_bytes());
    tail.extend_from_slice(&u32::MAX.to_le_bytes());
    tail.extend_from_slice(&0u16.to_le_bytes());
    let size = tail_offset + tail.len() as u64;
    Ok(NpzLayout {
        members: out,
        tail_offset,
        tail,
        size,
    })
}
