//! Unpacked layers, one directory per chain ID, shared by every image and container:
//!
//! ```text
//! layers/<chain hex>/diff/        the layer's files, whiteouts in overlay form
//! layers/<chain hex>/layer.json   LayerInfo (DiffID, parent, sizes, short link)
//! layers/<chain hex>/link         the short link name
//! layers/l/<26 chars>             -> ../<chain hex>/diff (keeps overlay's lowerdir short)
//! layers/.staging/<random>/       unpacks in progress
//! layers/.trash/<random>/         removals in progress
//! ```
//!
//! A layer is unpacked into `.staging`, its metadata written there, and the whole
//! directory renamed into place: a `layers/<chain>` directory is always complete. After
//! a crash, `.staging` and `.trash` are emptied and dangling short links dropped.

pub mod diff;
pub mod fsops;
pub mod safepath;
pub mod unpack;
pub mod whiteout;

use std::collections::HashSet;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::{self, Digest};
use crate::error::{ImageError, IoContext, Result};
use crate::fsutil::{self, TempPath};
pub use unpack::{Compression, UnpackLimit, UnpackStats};

/// Length of the short link names (overlay2 uses 26 as well).
const LINK_LEN: usize = 26;

/// What is recorded about an installed layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerInfo {
    pub chain_id: Digest,
    pub diff_id: Digest,
    pub parent: Option<Digest>,
    /// Docker's layer size: bytes of the non-directory entries of the diff (each
    /// hardlinked inode once, a symlink by the length of its target).
    pub size: u64,
    /// Length of the uncompressed tar stream (what `docker save` writes for it).
    pub tar_size: u64,
    /// Name of the short link in `layers/l/`.
    pub link: String,
}

/// A layer unpacked into the staging area, not yet installed. Dropping it removes the
/// files.
#[derive(Debug)]
pub struct StagedLayer {
    dir: TempPath,
    diff_id: Digest,
    pub stats: UnpackStats,
    pub size: u64,
}

/// An unpack whose DiffID may still be the caller's to supply (see
/// [`LayerStore::unpack_stream`]).
#[derive(Debug)]
pub struct RawStaged {
    dir: TempPath,
    pub stats: UnpackStats,
    pub size: u64,
}

impl RawStaged {
    /// Completes the record: an uncompressed layer's DiffID is its blob digest.
    pub fn into_staged(self, blob_digest: &Digest) -> StagedLayer {
        let diff_id = self.stats.diff_id.clone().unwrap_or_else(|| blob_digest.clone());
        StagedLayer {
            dir: self.dir,
            diff_id,
            stats: self.stats,
            size: self.size,
        }
    }
}

impl StagedLayer {
    pub fn diff_id(&self) -> &Digest {
        &self.diff_id
    }

    /// The unpacked files.
    pub fn diff_dir(&self) -> PathBuf {
        self.dir.path().join("diff")
    }
}

/// The layer directories of one data root.
#[derive(Debug)]
pub struct LayerStore {
    root: PathBuf,
    /// syncfs before an image record refers to new layers, so a power loss cannot
    /// leave a referenced layer with missing file data.
    durable: bool,
    /// `.trash/`: a removed layer is renamed there, then deleted.
    trash: fsutil::Trash,
}

impl LayerStore {
    /// Opens (creating) `root` and cleans what a crash left behind.
    pub fn open(root: &Path, durable: bool) -> Result<LayerStore> {
        let s = LayerStore {
            root: root.to_path_buf(),
            durable,
            trash: fsutil::Trash::open(&root.join(".trash"))?,
        };
        for d in [s.links_dir(), s.staging_dir()] {
            fsutil::ensure_dir(&d)?;
        }
        let staging = s.staging_dir();
        for e in fs::read_dir(&staging).ctx("read", &staging)? {
            let e = e.ctx("read", &staging)?;
            fsutil::remove_all(&e.path()).ctx("remove", &e.path())?;
        }
        // Short links whose layer never got renamed into place.
        for e in fs::read_dir(s.links_dir()).ctx("read", &s.links_dir())? {
            let e = e.ctx("read", &s.links_dir())?;
            if fs::metadata(e.path()).is_err() {
                fsutil::remove_all(&e.path()).ctx("remove", &e.path())?;
            }
        }
        Ok(s)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn durable(&self) -> bool {
        self.durable
    }

    pub fn links_dir(&self) -> PathBuf {
        self.root.join("l")
    }

    fn staging_dir(&self) -> PathBuf {
        self.root.join(".staging")
    }


    fn layer_dir(&self, chain: &Digest) -> PathBuf {
        self.root.join(chain.hex())
    }

    /// The directory holding a layer's files.
    pub fn diff_dir(&self, chain: &Digest) -> PathBuf {
        self.layer_dir(chain).join("diff")
    }

    /// A fresh, empty staging directory (removed on drop).
    pub(crate) fn new_staging(&self) -> Result<TempPath> {
        let dir = self.staging_dir().join(fsutil::random_id(16));
        fs::create_dir(&dir).ctx("create", &dir)?;
        let tmp = TempPath::new(dir);
        fs::create_dir(tmp.path().join("diff")).ctx("create", tmp.path())?;
        Ok(tmp)
    }

    /// Unpacks a (possibly compressed) layer tar into the staging area, in one pass.
    pub fn unpack(&self, input: impl Read, limit: &UnpackLimit) -> Result<StagedLayer> {
        let raw = self.unpack_inner(input, limit, true)?;
        let d = raw
            .stats
            .diff_id
            .clone()
            .ok_or_else(|| ImageError::System("unpack did not hash the layer".into()))?;
        Ok(raw.into_staged(&d))
    }

    /// Like [`LayerStore::unpack`] for a stream whose bytes the caller hashes anyway
    /// (a content-store ingest): an uncompressed layer is not hashed twice.
    pub fn unpack_stream(&self, input: impl Read, limit: &UnpackLimit) -> Result<RawStaged> {
        self.unpack_inner(input, limit, false)
    }

    fn unpack_inner(&self, input: impl Read, limit: &UnpackLimit, hash_plain: bool) -> Result<RawStaged> {
        let dir = self.new_staging()?;
        let diff = dir.path().join("diff");
        let mut lfs = fsops::RealLayerFs::new(&diff).ctx("open", &diff)?;
        let probe_dir = diff.clone();
        let free = move || fsutil::available_bytes(&probe_dir);
        let stats = unpack::unpack_layer(input, &mut lfs, limit, &free, hash_plain)?;
        let size = dir_size(&diff).ctx("measure", &diff)?;
        Ok(RawStaged { dir, stats, size })
    }

    /// Flushes the layers' filesystem (unpacked files, layer records, renames) when the
    /// store is durable. Called once per image, before its record is written.
    pub fn sync(&self) -> Result<()> {
        if self.durable {
            fsutil::syncfs(&self.root)?;
        }
        Ok(())
    }

    /// Installs a staged layer on top of `parent` (a chain ID) and returns its record.
    /// If the chain already exists (another image or a concurrent load installed it),
    /// the staged copy is dropped and the existing layer returned.
    pub fn install(&self, staged: StagedLayer, parent: Option<&Digest>) -> Result<LayerInfo> {
        if let Some(p) = parent
            && !self.exists(p) {
                return Err(ImageError::LayerNotFound(p.to_string()));
            }
        let chain = digest::chain_id(parent, staged.diff_id());
        if self.exists(&chain) {
            return self.get(&chain);
        }
        let info = LayerInfo {
            chain_id: chain.clone(),
            diff_id: staged.diff_id.clone(),
            parent: parent.cloned(),
            size: staged.size,
            tar_size: staged.stats.tar_size,
            link: fsutil::random_link_id(LINK_LEN),
        };
        let sdir = staged.dir.path().to_path_buf();
        // Made durable by the caller's `sync` before anything refers to the layer.
        fsutil::replace_unsynced(&sdir.join("link"), info.link.as_bytes())?;
        let json = serde_json::to_vec(&info)
            .map_err(|e| ImageError::System(format!("encode layer record: {e}")))?;
        fsutil::replace_unsynced(&sdir.join("layer.json"), &json)?;
        let link_path = self.links_dir().join(&info.link);
        std::os::unix::fs::symlink(format!("../{}/diff", chain.hex()), &link_path)
            .ctx("create", &link_path)?;
        let target = self.layer_dir(&chain);
        match fs::rename(&sdir, &target) {
            Ok(()) => {
                staged.dir.keep();
                Ok(info)
            }
            Err(e)
                if e.raw_os_error() == Some(libc::ENOTEMPTY)
                    || e.raw_os_error() == Some(libc::EEXIST) =>
            {
                // Lost a race with another installer of the same chain.
                let _ = fs::remove_file(&link_path);
                drop(staged);
                self.get(&chain)
            }
            Err(e) => {
                let _ = fs::remove_file(&link_path);
                Err(ImageError::io_path("install layer", &target, e))
            }
        }
    }

    pub fn exists(&self, chain: &Digest) -> bool {
        self.layer_dir(chain).join("layer.json").is_file()
    }

    pub fn get(&self, chain: &Digest) -> Result<LayerInfo> {
        let p = self.layer_dir(chain).join("layer.json");
        let data = match fs::read(&p) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ImageError::LayerNotFound(chain.to_string()));
            }
            Err(e) => return Err(ImageError::io_path("read", &p, e)),
        };
        serde_json::from_slice(&data)
            .map_err(|e| ImageError::System(format!("corrupt layer record {}: {e}", p.display())))
    }

    /// Every installed layer.
    pub fn list(&self) -> Result<Vec<LayerInfo>> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.root).ctx("read", &self.root)? {
            let e = e.ctx("read", &self.root)?;
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            let Ok(chain) = Digest::from_hex(name) else {
                continue;
            };
            match self.get(&chain) {
                Ok(info) => out.push(info),
                Err(ImageError::LayerNotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Chain IDs of every installed layer.
    pub fn chain_ids(&self) -> Result<HashSet<Digest>> {
        Ok(self.list()?.into_iter().map(|l| l.chain_id).collect())
    }

    /// Removes a layer: renamed away first (it vanishes atomically), then deleted.
    pub fn remove(&self, chain: &Digest) -> Result<()> {
        let info = self.get(chain)?;
        let dir = self.layer_dir(chain);
        // (A crash before the link's removal leaves it dangling: open() drops those.)
        self.trash.remove_now(&dir).ctx("remove layer", &dir)?;
        let _ = fs::remove_file(self.links_dir().join(&info.link));
        Ok(())
    }

    /// The short-link path (relative to the layers root) used in overlay's lowerdir.
    pub fn short_link(&self, chain: &Digest) -> Result<String> {
        Ok(format!("l/{}", self.get(chain)?.link))
    }
}

/// The uncompressed tar of a stored layer blob compressed with `c`.
pub fn decompressed<'a, R: io::BufRead + 'a>(r: R, c: Compression) -> Result<Box<dyn Read + 'a>> {
    Ok(match c {
        Compression::None => Box::new(r),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(r).map_err(|e| ImageError::from_io_chain("zstd", e))?,
        ),
        Compression::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(r)),
        Compression::Xz => Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(r)),
    })
}

/// Docker's `directory.Size`: the sizes of every non-directory below `root`, each
/// hardlinked inode once.
pub fn dir_size(root: &Path) -> io::Result<u64> {
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    let mut total = 0u64;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir)? {
            let e = e?;
            let m = fs::symlink_metadata(e.path())?;
            if m.is_dir() {
                stack.push(e.path());
                continue;
            }
            if m.nlink() > 1 && !seen.insert((m.dev(), m.ino())) {
                continue;
            }
            total += m.len();
        }
    }
    Ok(total)
}
