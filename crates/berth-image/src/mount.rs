//! Overlay mounts of a layer chain, behind the [`Mounter`] trait (the syscall seam).
//!
//! The classic `mount(2)` call takes all options in one string limited to a page.
//! Like Docker's overlay2, lower directories are named by short links
//! (`l/<26 chars>`) relative to the layers directory, and the mount is done from a
//! thread whose working directory is that directory (the thread first unshares its
//! filesystem context, so the daemon's other threads keep their cwd). That fits about
//! 140 layers; beyond a page, the new mount API's `lowerdir+` (Linux 6.8+) adds the
//! layers one by one with no length limit.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Room for the mount data string: one page including the NUL.
pub const MOUNT_DATA_MAX: usize = 4095;

/// An overlay to mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlaySpec {
    /// The directory lower paths are relative to (the layers root).
    pub base: PathBuf,
    /// Lower directories, topmost first: relative to `base` (short links) or absolute.
    pub lowers: Vec<PathBuf>,
    pub upper: PathBuf,
    pub work: PathBuf,
    pub target: PathBuf,
    /// Overlay's `volatile`: no syncs of the upper filesystem (Linux 5.10+).
    pub volatile: bool,
}

/// How a spec will be mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountPlan {
    /// One `mount(2)` with this data string, run from `base`.
    Legacy(String),
    /// The new mount API: `lowerdir+` once per lower (topmost first), then these
    /// other options.
    FsConfig {
        lowers: Vec<String>,
        options: Vec<(String, String)>,
    },
}

/// Escapes the characters overlay's option parser treats specially.
fn escape(p: &Path) -> String {
    let s = p.to_string_lossy();
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, ',' | ':' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Options added to every mount: `index=off` lets an upper dir be remounted (export,
/// restart) without EBUSY; `redirect_dir=off` makes renamed directories real copies, so
/// the upper dir alone describes the container's changes (commit, diff).
pub const EXTRA_OPTIONS: &[(&str, &str)] = &[("index", "off"), ("redirect_dir", "off")];

/// Chooses between the classic mount string and the new mount API.
pub fn plan(spec: &OverlaySpec) -> io::Result<MountPlan> {
    if spec.lowers.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "an overlay needs at least one lower directory",
        ));
    }
    let lowers: Vec<String> = spec.lowers.iter().map(|p| escape(p)).collect();
    let mut options = vec![
        ("upperdir".to_string(), escape(&spec.upper)),
        ("workdir".to_string(), escape(&spec.work)),
    ];
    options.extend(EXTRA_OPTIONS.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    if spec.volatile {
        options.push(("volatile".to_string(), String::new()));
    }
    // Rootless: inside a user namespace overlay must keep its whiteout/opaque markers in
    // `user.overlay.*` xattrs (`trusted.*` is out of reach); an empty value is a flag.
    // There `redirect_dir=off` is refused too ("conflicting options"): `nofollow` also
    // makes no redirects (renamed directories are copied up whole), and follows none.
    if crate::layer::whiteout::in_user_namespace() {
        for (k, v) in options.iter_mut() {
            if k == "redirect_dir" {
                *v = "nofollow".to_string();
            }
        }
        options.push(("userxattr".to_string(), String::new()));
    }
    let data = format!(
        "lowerdir={},{}",
        lowers.join(":"),
        options
            .iter()
            .map(|(k, v)| if v.is_empty() { k.clone() } else { format!("{k}={v}") })
            .collect::<Vec<_>>()
            .join(",")
    );
    if data.len() <= MOUNT_DATA_MAX {
        Ok(MountPlan::Legacy(data))
    } else {
        Ok(MountPlan::FsConfig { lowers, options })
    }
}

/// Mounts and unmounts overlays.
pub trait Mounter: Send + Sync + std::fmt::Debug {
    fn mount_overlay(&self, spec: &OverlaySpec) -> io::Result<()>;
    fn unmount(&self, target: &Path) -> io::Result<()>;
}

/// The real kernel.
#[derive(Debug, Default, Clone, Copy)]
pub struct KernelMounter;

/// Runs `f` on a fresh thread whose cwd is `dir`, without touching the cwd of the
/// process's other threads.
fn with_private_cwd<T: Send>(dir: &Path, f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: CLONE_FS only gives this thread its own copy of cwd, root and
            // umask; no file descriptor table is unshared, so no fd is invalidated for
            // any other thread. The thread ends when `f` returns.
            unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::FS) }?;
            rustix::process::chdir(dir)?;
            f()
        })
        .join()
        .map_err(|_| io::Error::other("mount thread panicked"))?
    })
}

impl Mounter for KernelMounter {
    fn mount_overlay(&self, spec: &OverlaySpec) -> io::Result<()> {
        let plan = plan(spec)?;
        let target = spec.target.clone();
        with_private_cwd(&spec.base, move || match plan {
            MountPlan::Legacy(data) => {
                let data = std::ffi::CString::new(data)
                    .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in mount options"))?;
                rustix::mount::mount(
                    "overlay",
                    &target,
                    "overlay",
                    rustix::mount::MountFlags::empty(),
                    data.as_c_str(),
                )
                .map_err(io::Error::from)
            }
            MountPlan::FsConfig { lowers, options } => {
                use rustix::mount::{
                    FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, fsconfig_create,
                    fsconfig_set_string, fsmount, fsopen, move_mount,
                };
                let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
                for l in &lowers {
                    fsconfig_set_string(&fs, "lowerdir+", unescape(l)).map_err(|e| {
                        io::Error::new(
                            io::Error::from(e).kind(),
                            format!("overlay lowerdir+ (needs Linux 6.8+ for more than ~140 layers): {e}"),
                        )
                    })?;
                }
                for (k, v) in &options {
                    if v.is_empty() {
                        rustix::mount::fsconfig_set_flag(&fs, k.as_str())?;
                    } else {
                        fsconfig_set_string(&fs, k.as_str(), unescape(v))?;
                    }
                }
                fsconfig_create(&fs)?;
                let mnt = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())?;
                move_mount(
                    &mnt,
                    "",
                    rustix::fs::CWD,
                    &target,
                    MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
                )
                .map_err(io::Error::from)
            }
        })
    }

    fn unmount(&self, target: &Path) -> io::Result<()> {
        match rustix::mount::unmount(target, rustix::mount::UnmountFlags::empty()) {
            Ok(()) => Ok(()),
            // Not a mount point: nothing to do.
            Err(rustix::io::Errno::INVAL) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// `fsconfig` takes one value per call, so overlay's escapes are not needed there.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut esc = false;
    for c in s.chars() {
        if esc {
            out.push(c);
            esc = false;
        } else if c == '\\' {
            esc = true;
        } else {
            out.push(c);
        }
    }
    out
}

/// True when `path` is a mount point (listed in this process's mountinfo).
pub fn is_mount_point(path: &Path) -> io::Result<bool> {
    let want = match fs::canonicalize(path) {
        Ok(p) => p,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let info = fs::read_to_string("/proc/self/mountinfo")?;
    Ok(info.lines().any(|l| {
        l.split(' ')
            .nth(4)
            .is_some_and(|mp| unescape_mountinfo(mp) == want)
    }))
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What an overlay is id-mapped into: a user namespace (an open nsfs file) and the host
/// uid and gid of its root.
#[derive(Debug)]
pub struct Idmap<'a> {
    pub userns: std::os::fd::BorrowedFd<'a>,
    pub root_uid: u32,
    pub root_gid: u32,
}

/// The lower layers of `spec` as id-mapped mounts under `staging` (the layers root once,
/// each absolute lower once), for an overlay whose files the user namespace's root owns:
/// files the layers have as uid 0 show as that root. The upper and work directories are
/// not id-mapped (overlay needs its mounter's ids mapped there) but handed to that root,
/// so what the container writes belongs to its user namespace on disk too. Returns the
/// spec to mount; [`release_staging`] drops the staged mounts once the overlay holds
/// them.
pub fn stage_idmapped(spec: &OverlaySpec, staging: &Path, idmap: &Idmap<'_>) -> io::Result<OverlaySpec> {
    release_staging(staging);
    fs::create_dir_all(staging)?;
    let mut out = spec.clone();
    let layers = staging.join("layers");
    bind_idmapped(&spec.base, &layers, idmap)?;
    out.base = layers;
    for (i, l) in out.lowers.iter_mut().enumerate() {
        if l.is_absolute() {
            let to = staging.join(format!("lower{i}"));
            bind_idmapped(l, &to, idmap)?;
            *l = to;
        }
    }
    for d in [&spec.upper, &spec.work] {
        std::os::unix::fs::chown(d, Some(idmap.root_uid), Some(idmap.root_gid))?;
    }
    Ok(out)
}

/// Detaches and removes what [`stage_idmapped`] made (also what a crash left): the
/// staged mounts are detached before their directories are removed, never deleted
/// through.
pub fn release_staging(staging: &Path) {
    let Ok(rd) = fs::read_dir(staging) else { return };
    for e in rd.flatten() {
        let p = e.path();
        let _ = rustix::mount::unmount(&p, rustix::mount::UnmountFlags::DETACH);
        let _ = fs::remove_dir(&p);
    }
    let _ = fs::remove_dir(staging);
}

/// An id-mapped bind mount of the directory `src` at `dst` (made).
fn bind_idmapped(src: &Path, dst: &Path, idmap: &Idmap<'_>) -> io::Result<()> {
    fs::create_dir_all(dst)?;
    bind_idmapped_at(src, dst, idmap, false)
}

/// An id-mapped bind mount of `src` (a directory, with what is mounted below it when
/// `recursive`, or a file) at the existing `dst`: open_tree(CLONE) of `src`, the mapping of
/// `idmap`'s user namespace set on the detached copy, moved to `dst`. Fails where a
/// filesystem cannot id-map.
pub fn bind_idmapped_at(src: &Path, dst: &Path, idmap: &Idmap<'_>, recursive: bool) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let mut flags = rustix::mount::OpenTreeFlags::OPEN_TREE_CLONE | rustix::mount::OpenTreeFlags::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= rustix::mount::OpenTreeFlags::AT_RECURSIVE;
    }
    let tree = rustix::mount::open_tree(rustix::fs::CWD, src, flags)?;
    // struct mount_attr of <linux/mount.h> (MOUNT_ATTR_SIZE_VER0).
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
    let attr = MountAttr { attr_set: MOUNT_ATTR_IDMAP, attr_clr: 0, propagation: 0, userns_fd: idmap.userns.as_raw_fd() as u64 };
    // SAFETY: mount_setattr on a detached tree we own, with an empty path (AT_EMPTY_PATH)
    // and a properly sized attribute struct that outlives the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | if recursive { libc::AT_RECURSIVE } else { 0 },
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("id-mapping {}: {e}", src.display())));
    }
    rustix::mount::move_mount(&tree, "", rustix::fs::CWD, dst, rustix::mount::MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH)?;
    Ok(())
}

#[cfg(test)]
pub mod testing {
    //! A recording mounter for unit tests.
    use super::*;
    use std::sync::Mutex;

    #[derive(Debug, Default)]
    pub struct RecordingMounter {
        pub calls: Mutex<Vec<String>>,
    }

    impl Mounter for RecordingMounter {
        fn mount_overlay(&self, spec: &OverlaySpec) -> io::Result<()> {
            let p = plan(spec)?;
            self.calls
                .lock()
                .map_err(|_| io::Error::other("poisoned"))?
                .push(format!("mount {} {:?}", spec.target.display(), p));
            Ok(())
        }
        fn unmount(&self, target: &Path) -> io::Result<()> {
            self.calls
                .lock()
                .map_err(|_| io::Error::other("poisoned"))?
                .push(format!("unmount {}", target.display()));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(n: usize) -> OverlaySpec {
        OverlaySpec {
            base: "/var/lib/berth/layers".into(),
            lowers: (0..n).map(|i| PathBuf::from(format!("l/{:026}", i))).collect(),
            upper: "/var/lib/berth/containers/abc/upper".into(),
            work: "/var/lib/berth/containers/abc/work".into(),
            target: "/var/lib/berth/containers/abc/rootfs".into(),
            volatile: false,
        }
    }

    #[test]
    fn short_links_keep_docker_sized_chains_in_one_page() {
        let MountPlan::Legacy(data) = plan(&spec(128)).unwrap() else {
            panic!("128 layers should fit the classic mount call")
        };
        assert!(data.starts_with("lowerdir=l/00000000000000000000000000:l/00000000000000000000000001:"));
        assert!(data.ends_with(",upperdir=/var/lib/berth/containers/abc/upper,workdir=/var/lib/berth/containers/abc/work,index=off,redirect_dir=off"));
        assert!(data.len() <= MOUNT_DATA_MAX);
    }

    #[test]
    fn long_chains_use_lowerdir_plus() {
        let MountPlan::FsConfig { lowers, options } = plan(&spec(200)).unwrap() else {
            panic!("200 layers cannot fit one page")
        };
        assert_eq!(lowers.len(), 200);
        assert_eq!(options[0].0, "upperdir");
    }

    #[test]
    fn escapes_separators() {
        let mut s = spec(1);
        s.upper = "/a,b:c".into();
        let MountPlan::Legacy(data) = plan(&s).unwrap() else { panic!() };
        assert!(data.contains("upperdir=/a\\,b\\:c,"), "{data}");
        assert_eq!(unescape("/a\\,b\\:c"), "/a,b:c");
    }

    #[test]
    fn refuses_no_lowers() {
        assert!(plan(&spec(0)).is_err());
    }

    #[test]
    fn mountinfo_unescaping() {
        assert_eq!(unescape_mountinfo("/a\\040b"), "/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
    }
}
