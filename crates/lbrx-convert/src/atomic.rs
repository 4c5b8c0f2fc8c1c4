//! Atomic outputs: every file is built unnamed (`O_TMPFILE`) or under a hidden temporary name next to the
//! destination and only linked and renamed into place once complete (and, with `sync`, fsynced). A run that fails or is killed
//! leaves nothing at the destination, and (with `O_TMPFILE`) nothing at all.

use crate::workspace::{write_sentinel, WorkspaceInfo};
use lbrx_core::{Error, Result, Sink};
use rustix::fs::{AtFlags, FallocateFlags, Mode, OFlags, CWD};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// What the destination is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// One file.
    File,
    /// A directory of files.
    Dir,
    /// Several files side by side in the destination directory (a split GGUF), each renamed into place on
    /// commit, the first one last.
    Files,
}

#[derive(Debug)]
struct OutFile {
    name: String,
    file: File,
    /// Hidden temporary path when `O_TMPFILE` was not available.
    named: Option<PathBuf>,
}

/// A set of output files written in place and committed atomically.
#[derive(Debug)]
pub struct AtomicOutput {
    dst: PathBuf,
    parent: PathBuf,
    kind: OutputKind,
    overwrite: bool,
    sync: bool,
    files: Vec<OutFile>,
    small: Vec<(String, Vec<u8>)>,
    copies: Vec<(String, PathBuf, Placement)>,
    workspace: Option<WorkspaceInfo>,
}

/// An output with names, before it is moved into place: what a commit check reads.
#[derive(Debug, Clone, Copy)]
pub enum Staged<'a> {
    /// The one file, at its temporary path.
    File(&'a Path),
    /// The directory, at its temporary path.
    Dir(&'a Path),
    /// Side-by-side files: (final name, temporary path), in plan order.
    Files(&'a [(&'a str, &'a Path)]),
}

/// How a file from elsewhere is placed in a directory output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// A copy (kernel-side; a reflink where the filesystem makes `copy_file_range` one).
    Copy,
    /// A reflink (shared extents, copy-on-write) where the filesystem allows, else a copy.
    ReflinkOrCopy,
    /// A reflink, else a hard link (never for files in the Hugging Face cache), else a copy.
    LinkOrCopy,
}

fn partial_prefix(dst: &Path) -> String {
    let name = dst
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(".{name}.lbrx-partial-")
}

impl AtomicOutput {
    /// Prepares an output at `dst`. Refuses an existing destination unless `overwrite`.
    pub fn new(dst: &Path, kind: OutputKind, overwrite: bool) -> Result<Self> {
        crate::hfcache::refuse_cache_destination(dst)?;
        if dst.file_name().is_none() {
            return Err(Error::Destination {
                path: dst.to_path_buf(),
                why: "not a valid output name".to_string(),
            });
        }
        let parent = match dst.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !parent.is_dir() {
            std::fs::create_dir_all(&parent)
                .map_err(|e| Error::io(&parent, "create directory", e))?;
        }
        if kind == OutputKind::Files {
            std::fs::create_dir_all(dst).map_err(|e| Error::io(dst, "create directory", e))?;
        } else if let Ok(meta) = std::fs::symlink_metadata(dst) {
            let empty_dir = meta.is_dir()
                && std::fs::read_dir(dst)
                    .map(|mut d| d.next().is_none())
                    .unwrap_or(false);
            let replaceable = match kind {
                OutputKind::File => meta.is_file(),
                OutputKind::Dir | OutputKind::Files => meta.is_dir(),
            };
            let allowed = (empty_dir && kind == OutputKind::Dir) || (overwrite && replaceable);
            if !allowed {
                return Err(Error::Destination {
                    path: dst.to_path_buf(),
                    why: format!(
                        "already exists{}",
                        if replaceable {
                            " (pass --force to replace it)"
                        } else {
                            " and is not a replaceable output"
                        }
                    ),
                });
            }
        }
        clean_stale_partials(&parent, &partial_prefix(dst));
        Ok(AtomicOutput {
            dst: dst.to_path_buf(),
            parent,
            kind,
            overwrite,
            sync: false,
            files: Vec::new(),
            small: Vec::new(),
            copies: Vec::new(),
            workspace: None,
        })
    }

    /// Also make the output durable against power loss: fsync every file and directory before and after the
    /// rename. Without it the output is still atomic against interruption (killed process, crash of lbrx),
    /// which is what `O_TMPFILE` + rename guarantee, at the speed of `cp`.
    pub fn with_sync(mut self, sync: bool) -> Self {
        self.sync = sync;
        self
    }

    /// The final destination.
    pub fn dst(&self) -> &Path {
        &self.dst
    }

    /// Adds an output file of exactly `size` bytes (space reserved now, so a full disk fails early);
    /// returns its index for [`Sink::write_at`]. For a `File` output, `name` is ignored.
    pub fn add_file(&mut self, name: &str, size: u64) -> Result<usize> {
        if self.kind == OutputKind::Files && self.dst.join(name).exists() && !self.overwrite {
            return Err(Error::Destination {
                path: self.dst.join(name).to_path_buf(),
                why: "already exists (pass --force to replace it)".to_string(),
            });
        }
        let (file, named) = match rustix::fs::openat(
            CWD,
            &self.parent,
            OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        ) {
            Ok(fd) => (File::from(fd), None),
            Err(_) => {
                let p = self.parent.join(format!(
                    "{}{}-{}",
                    partial_prefix(&self.dst),
                    std::process::id(),
                    self.files.len()
                ));
                let f = File::options()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .open(&p)
                    .map_err(|e| Error::io(&p, "create", e))?;
                (f, Some(p))
            }
        };
        if size > 0 {
            match rustix::fs::fallocate(&file, FallocateFlags::empty(), 0, size) {
                Ok(()) => {}
                Err(rustix::io::Errno::NOSPC) => {
                    return Err(Error::io(
                        &self.dst,
                        "reserve space",
                        std::io::Error::from_raw_os_error(rustix::io::Errno::NOSPC.raw_os_error()),
                    ))
                }
                Err(_) => file
                    .set_len(size)
                    .map_err(|e| Error::io(&self.dst, "set length", e))?,
            }
        }
        self.files.push(OutFile {
            name: name.to_string(),
            file,
            named,
        });
        Ok(self.files.len() - 1)
    }

    /// Adds a small file (an index, a config) written at commit time; `name` may contain `/` for
    /// subdirectories.
    pub fn add_small(&mut self, name: &str, bytes: Vec<u8>) {
        self.small.push((name.to_string(), bytes));
    }

    /// Adds a file copied from `src` at commit time (directory outputs only).
    pub fn add_copy(&mut self, name: &str, src: &Path) {
        self.add_placed(name, src, Placement::Copy);
    }

    /// Adds a file placed from `src` at commit time as `how` says (directory outputs only); `name` may contain
    /// `/` for subdirectories.
    pub fn add_placed(&mut self, name: &str, src: &Path, how: Placement) {
        self.copies.push((name.to_string(), src.to_path_buf(), how));
    }

    /// Makes a directory output a workspace: its sentinel is the first file written and is marked complete
    /// only once the directory is in place at its destination.
    pub fn with_workspace(mut self, info: WorkspaceInfo) -> Self {
        self.workspace = Some(info);
        self
    }

    /// Syncs every file and moves the output into place: nothing is visible at the destination before this.
    pub fn commit(self) -> Result<()> {
        self.commit_checked(&|_| Ok(()))
    }

    /// [`commit`](Self::commit), with `check` run on the output once it has names (at hidden temporary paths
    /// beside the destination) and before it is moved into place; an error from it leaves nothing behind.
    pub fn commit_checked(mut self, check: &dyn Fn(Staged<'_>) -> Result<()>) -> Result<()> {
        crate::interrupt::check()?;
        // Runs committing into one directory take turns (an advisory lock on the directory itself, so nothing
        // is left behind); a run that finds its destination taken meanwhile fails instead of mixing outputs.
        let lock_dir = if self.kind == OutputKind::Files {
            &self.dst
        } else {
            &self.parent
        };
        let _lock = lock(lock_dir)?;
        if !self.overwrite {
            let taken = match self.kind {
                OutputKind::Files => self.files.iter().any(|f| self.dst.join(&f.name).exists()),
                OutputKind::File => std::fs::symlink_metadata(&self.dst).is_ok(),
                OutputKind::Dir => {
                    std::fs::read_dir(&self.dst).is_ok_and(|mut d| d.next().is_some())
                }
            };
            if taken {
                return Err(Error::Destination {
                    path: self.dst.clone(),
                    why: "already exists: another run created it while this one was writing (pass --force to replace it)"
                        .into(),
                });
            }
        }
        if self.sync {
            for f in &self.files {
                f.file
                    .sync_all()
                    .map_err(|e| Error::io(&self.dst, "fsync", e))?;
            }
        }
        if self.kind == OutputKind::Files {
            // Every file but the first, then the first: a reader that opens the first split finds all the others.
            let n = self.files.len();
            let tmps: Vec<PathBuf> = self
                .files
                .iter()
                .map(|f| {
                    self.dst
                        .join(format!(".{}.lbrx-partial-{}", f.name, std::process::id()))
                })
                .collect();
            let staged = (|| -> Result<()> {
                for (f, tmp) in self.files.iter().zip(&tmps) {
                    remove_any(tmp);
                    materialize(f, tmp)?;
                }
                let named: Vec<(&str, &Path)> = self
                    .files
                    .iter()
                    .zip(&tmps)
                    .map(|(f, t)| (f.name.as_str(), t.as_path()))
                    .collect();
                check(Staged::Files(&named))
            })();
            if let Err(e) = staged {
                tmps.iter().for_each(|t| remove_any(t));
                return Err(e);
            }
            for i in (1..n).chain(std::iter::once(0)).filter(|&i| i < n) {
                let target = self.dst.join(&self.files[i].name);
                std::fs::rename(&tmps[i], &target)
                    .map_err(|e| Error::io(&target, "rename into place", e))?;
            }
            if self.sync {
                sync_dir(&self.dst);
            }
            for f in &mut self.files {
                if let Some(p) = f.named.take() {
                    let _ = std::fs::remove_file(p);
                }
            }
            return Ok(());
        }
        // the staged name keeps the destination's extension, so that readers know the format
        let ext = match self.dst.extension() {
            Some(e) if self.kind == OutputKind::File => format!(".{}", e.to_string_lossy()),
            _ => String::new(),
        };
        let staging = self.parent.join(format!(
            "{}{}{ext}",
            partial_prefix(&self.dst),
            std::process::id()
        ));
        remove_any(&staging);
        match self.kind {
            OutputKind::File => {
                let f = self
                    .files
                    .first()
                    .ok_or_else(|| Error::Invalid("no output file was planned".into()))?;
                materialize(f, &staging)?;
            }
            OutputKind::Dir | OutputKind::Files => {
                std::fs::create_dir(&staging)
                    .map_err(|e| Error::io(&staging, "create directory", e))?;
                let result = self.fill_dir(&staging);
                if let Err(e) = result {
                    remove_any(&staging);
                    return Err(e);
                }
            }
        }
        let staged = match self.kind {
            OutputKind::File => Staged::File(&staging),
            _ => Staged::Dir(&staging),
        };
        if let Err(e) = check(staged) {
            remove_any(&staging);
            return Err(e);
        }
        let old = self.parent.join(format!(
            ".{}.lbrx-old-{}",
            self.dst.file_name().unwrap_or_default().to_string_lossy(),
            std::process::id()
        ));
        let mut moved_old = false;
        if self.overwrite && self.kind == OutputKind::Dir && self.dst.is_dir() {
            std::fs::rename(&self.dst, &old).map_err(|e| Error::io(&self.dst, "move aside", e))?;
            moved_old = true;
        }
        if let Err(e) = std::fs::rename(&staging, &self.dst) {
            if moved_old {
                let _ = std::fs::rename(&old, &self.dst);
            }
            remove_any(&staging);
            return Err(Error::io(&self.dst, "rename into place", e));
        }
        if moved_old {
            remove_any(&old);
        }
        // the workspace is marked complete only in place: a run killed before this point leaves a staged
        // or renamed directory whose sentinel still says incomplete, which health refuses
        if let (Some(ws), OutputKind::Dir) = (&self.workspace, self.kind) {
            write_sentinel(
                &self.dst,
                &WorkspaceInfo {
                    complete: true,
                    ..ws.clone()
                },
            )?;
            if self.sync {
                sync_dir(&self.dst);
            }
        }
        if self.sync {
            sync_dir(&self.parent);
        }
        for f in &mut self.files {
            if let Some(p) = f.named.take() {
                let _ = std::fs::remove_file(p);
            }
        }
        Ok(())
    }

    fn fill_dir(&self, staging: &Path) -> Result<()> {
        if let Some(ws) = &self.workspace {
            write_sentinel(staging, ws)?;
        }
        for f in &self.files {
            materialize(f, &staging.join(&f.name))?;
        }
        for (name, bytes) in &self.small {
            let p = staging.join(name);
            if let Some(dir) = p.parent() {
                std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, "create directory", e))?;
            }
            let file = File::create(&p).map_err(|e| Error::io(&p, "create", e))?;
            file.write_all_at(bytes, 0)
                .map_err(|e| Error::io(&p, "write", e))?;
            if self.sync {
                file.sync_all().map_err(|e| Error::io(&p, "fsync", e))?;
            }
        }
        for (name, src, how) in &self.copies {
            let p = staging.join(name);
            if let Some(dir) = p.parent() {
                std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, "create directory", e))?;
            }
            place(src, &p, *how)?;
            if self.sync {
                File::open(&p)
                    .and_then(|f| f.sync_all())
                    .map_err(|e| Error::io(&p, "fsync", e))?;
            }
        }
        if self.sync {
            sync_dir(staging);
        }
        Ok(())
    }
}

impl Drop for AtomicOutput {
    fn drop(&mut self) {
        for f in &mut self.files {
            if let Some(p) = f.named.take() {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

/// Places `src` at `dst` as `how` asks, falling back to a copy.
fn place(src: &Path, dst: &Path, how: Placement) -> Result<()> {
    if how != Placement::Copy {
        let reflinked = (|| -> std::io::Result<()> {
            let from = File::open(src)?;
            let to = File::options().write(true).create_new(true).open(dst)?;
            rustix::fs::ioctl_ficlone(&to, &from).map_err(std::io::Error::from)
        })();
        match reflinked {
            Ok(()) => return Ok(()),
            Err(_) => {
                let _ = std::fs::remove_file(dst);
            }
        }
        if how == Placement::LinkOrCopy
            && !crate::hfcache::is_inside_cache(src)
            && std::fs::hard_link(src, dst).is_ok()
        {
            return Ok(());
        }
    }
    std::fs::copy(src, dst)
        .map(|_| ())
        .map_err(|e| Error::io(src, "copy", e))
}

/// Gives an unnamed (or temporarily named) file its name at `path`.
fn materialize(f: &OutFile, path: &Path) -> Result<()> {
    match &f.named {
        Some(tmp) => std::fs::hard_link(tmp, path).map_err(|e| Error::io(path, "link", e)),
        None => {
            use std::os::fd::AsRawFd;
            let proc_path = format!("/proc/self/fd/{}", f.file.as_raw_fd());
            rustix::fs::linkat(CWD, proc_path.as_str(), CWD, path, AtFlags::SYMLINK_FOLLOW).map_err(
                |e| {
                    Error::io(
                        path,
                        "link",
                        std::io::Error::from_raw_os_error(e.raw_os_error()),
                    )
                },
            )
        }
    }
}

/// An exclusive advisory lock on a directory, held until the returned handle is dropped; `None` where the
/// filesystem has no locks (the commit then goes ahead unserialized, as it would without this lock).
fn lock(dir: &Path) -> Result<Option<File>> {
    let d = File::open(dir).map_err(|e| Error::io(dir, "open directory", e))?;
    Ok(
        rustix::fs::flock(&d, rustix::fs::FlockOperation::LockExclusive)
            .ok()
            .map(|()| d),
    )
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

fn remove_any(p: &Path) {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => {
            let _ = std::fs::remove_dir_all(p);
        }
        Ok(_) => {
            let _ = std::fs::remove_file(p);
        }
        Err(_) => {}
    }
}

/// Removes leftovers of earlier runs for the same destination whose process is gone.
fn clean_stale_partials(parent: &Path, prefix: &str) {
    let Ok(rd) = std::fs::read_dir(parent) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(prefix) else {
            continue;
        };
        let pid: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        if pid.is_empty() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        remove_any(&e.path());
    }
}

impl AtomicOutput {
    /// Reads back `buf.len()` bytes written at `offset` of output file `file` (before the commit).
    pub fn read_at(&self, file: usize, offset: u64, buf: &mut [u8]) -> Result<()> {
        let f = self
            .files
            .get(file)
            .ok_or_else(|| Error::Invalid(format!("no output file #{file}")))?;
        std::os::unix::fs::FileExt::read_exact_at(&f.file, buf, offset)
            .map_err(|e| Error::io(self.dst.join(&f.name), "read back", e))
    }
}

impl Sink for AtomicOutput {
    fn write_at(&self, file: usize, offset: u64, data: &[u8]) -> Result<()> {
        let f = self
            .files
            .get(file)
            .ok_or_else(|| Error::Invalid(format!("no output file #{file}")))?;
        f.file
            .write_all_at(data, offset)
            .map_err(|e| Error::io(self.dst.join(&f.name), "write", e))
    }

    fn copy_range(
        &self,
        file: usize,
        offset: u64,
        src: &File,
        src_offset: u64,
        len: u64,
    ) -> Result<bool> {
        let f = self
            .files
            .get(file)
            .ok_or_else(|| Error::Invalid(format!("no output file #{file}")))?;
        let (mut off_in, mut off_out, mut left) = (src_offset, offset, len);
        while left > 0 {
            let want = left.min(1 << 30) as usize;
            match rustix::fs::copy_file_range(
                src,
                Some(&mut off_in),
                &f.file,
                Some(&mut off_out),
                want,
            ) {
                Ok(0) => {
                    return Err(Error::io(
                        self.dst.join(&f.name),
                        "copy",
                        std::io::ErrorKind::UnexpectedEof.into(),
                    ))
                }
                Ok(n) => left -= n as u64,
                Err(e)
                    if left == len
                        && matches!(
                            e,
                            rustix::io::Errno::XDEV
                                | rustix::io::Errno::NOSYS
                                | rustix::io::Errno::OPNOTSUPP
                                | rustix::io::Errno::INVAL
                        ) =>
                {
                    return Ok(false)
                }
                Err(e) => {
                    return Err(Error::io(
                        self.dst.join(&f.name),
                        "copy",
                        std::io::Error::from_raw_os_error(e.raw_os_error()),
                    ))
                }
            }
        }
        Ok(true)
    }
}
