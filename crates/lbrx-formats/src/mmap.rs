//! Read-only memory maps of source files, with a hint to drop pages that were consumed.

use lbrx_core::{Error, Result};
use memmap2::{Mmap, UncheckedAdvice};
use std::fs::File;
use std::path::{Path, PathBuf};

/// A file opened read-only and mapped into memory (nothing is read until a byte is touched).
#[derive(Debug)]
pub struct MappedFile {
    path: PathBuf,
    file: File,
    map: Option<Mmap>,
    len: u64,
}

/// Opens `path` read-only, without updating its access time where the OS allows (`O_NOATIME`), so that
/// reading a model leaves every timestamp of its files as it was.
pub fn open_read_only(path: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let noatime = rustix::fs::OFlags::NOATIME.bits() as i32;
    match File::options().read(true).custom_flags(noatime).open(path) {
        Ok(f) => Ok(f),
        // O_NOATIME needs ownership of the file (or CAP_FOWNER): fall back to a plain read-only open.
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::PERM.raw_os_error()) => {
            File::open(path).map_err(|e| Error::io(path, "open", e))
        }
        Err(e) => Err(Error::io(path, "open", e)),
    }
}

impl MappedFile {
    /// Opens `path` read-only and maps it.
    pub fn open(path: &Path) -> Result<Self> {
        let file = open_read_only(path)?;
        let meta = file.metadata().map_err(|e| Error::io(path, "stat", e))?;
        if !meta.is_file() {
            return Err(Error::Invalid(format!(
                "{}: not a regular file",
                path.display()
            )));
        }
        let len = meta.len();
        let map = if len == 0 {
            None
        } else {
            // SAFETY: the map is read-only and private to this process's view of a file opened read-only.
            // lbrx never writes to its sources; if another process truncates or rewrites the file while it is
            // mapped, reads may fault or see new bytes, the documented limit of every mmap-based reader.
            Some(unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, "mmap", e))?)
        };
        Ok(MappedFile {
            path: path.to_path_buf(),
            file,
            map,
            len,
        })
    }

    /// The path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// File size in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The whole file.
    pub fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    /// Bytes `[offset, offset + len)`; callers pass ranges their header validated, others give an empty slice.
    pub fn range(&self, offset: u64, len: u64) -> &[u8] {
        let (Ok(start), Ok(n)) = (usize::try_from(offset), usize::try_from(len)) else {
            return &[];
        };
        start
            .checked_add(n)
            .and_then(|end| self.bytes().get(start..end))
            .unwrap_or(&[])
    }

    /// Tells the kernel whether reads will be scattered (headers spread over a file: no read-around on a fault)
    /// or sequential again.
    pub fn advise_scattered(&self, scattered: bool) {
        if let Some(map) = &self.map {
            let advice = if scattered {
                memmap2::Advice::Random
            } else {
                memmap2::Advice::Normal
            };
            let _ = map.advise(advice);
        }
    }

    /// Drops the mapped pages wholly inside `[offset, offset + len)` from this process (they stay in the
    /// page cache), so the resident size stays bounded while a large file streams through.
    pub fn release(&self, offset: u64, len: u64) {
        const PAGE: u64 = 4096;
        let Some(map) = &self.map else { return };
        let start = offset.div_ceil(PAGE) * PAGE;
        let end = (offset.saturating_add(len) / PAGE * PAGE).min(self.len);
        if end <= start {
            return;
        }
        // SAFETY: the map is a read-only shared file mapping; MADV_DONTNEED only drops its page-table entries,
        // and a later access faults the same file bytes back in, so no live slice can observe changed data.
        let _ = unsafe {
            map.unchecked_advise_range(
                UncheckedAdvice::DontNeed,
                start as usize,
                (end - start) as usize,
            )
        };
    }
}
