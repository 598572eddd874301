//! A full disk: the daemon's data root on a small loop-mounted ext4. Importing an image
//! bigger than the space left, a container logging until the disk is full, and a commit
//! that does not fit each fail with "no space left on device", leave nothing half-made
//! (no image, no layer, no blob, nothing in the ingest or staging areas), the daemon
//! keeps serving, and once space is freed the same operation succeeds. Also berth's own
//! margin (`--min-free-space`): a layer that would eat into it is refused with the same
//! text before the disk is full.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_testutil::daemon::{TestDaemon, ping, run_ok};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_berth"))
}

const ENOSPC: &str = "no space left on device";

/// An ext4 filesystem of `mib` MiB in a file, loop-mounted at `at`; unmounted and
/// detached on drop (the loop device is mounted with autoclear).
struct SmallDisk {
    image: PathBuf,
    at: PathBuf,
}

impl SmallDisk {
    fn mount(at: &Path, mib: u64) -> SmallDisk {
        let image = at.with_extension("img");
        run_ok(Command::new("truncate").arg("-s").arg(format!("{mib}M")).arg(&image));
        // No reserved blocks: what df shows free is what root can use.
        run_ok(Command::new("mkfs.ext4").args(["-q", "-F", "-m", "0", "-E", "lazy_itable_init=0,lazy_journal_init=0"]).arg(&image));
        std::fs::create_dir_all(at).unwrap();
        run_ok(Command::new("mount").args(["-o", "loop"]).arg(&image).arg(at));
        SmallDisk { image, at: at.to_path_buf() }
    }

    fn free(&self) -> u64 {
        let st = rustix_statvfs(&self.at);
        st.0 * st.1
    }
}

fn rustix_statvfs(p: &Path) -> (u64, u64) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: statvfs writes into a zeroed struct we own; c is NUL-terminated.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0, "statvfs {}", p.display());
    (st.f_bavail, st.f_frsize)
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        berth_testutil::daemon::unmount_under(&self.at);
        let _ = std::fs::remove_file(&self.image);
    }
}

/// A daemon whose data root is a fresh `mib` MiB ext4.
fn daemon_on_small_disk(mib: u64, extra: &[&str]) -> (TestDaemon, SmallDisk) {
    let mut d = TestDaemon::start_with(bin(), extra);
    d.stop();
    let _ = std::fs::remove_dir_all(&d.data_root);
    let disk = SmallDisk::mount(&d.data_root, mib);
    d.start_again();
    (d, disk)
}

/// Fills the disk with a ballast file until `leave` bytes are free.
fn ballast(disk: &SmallDisk, leave: u64) -> PathBuf {
    let path = disk.at.join("ballast");
    let free = disk.free();
    let size = free.saturating_sub(leave);
    let f = std::fs::File::create(&path).unwrap();
    // fallocate: real blocks, instantly.
    let r = unsafe { libc::fallocate(std::os::fd::AsRawFd::as_raw_fd(&f), 0, 0, size as i64) };
    assert_eq!(r, 0, "fallocate {size}: {}", std::io::Error::last_os_error());
    path
}

/// Writes a file of 4 KiB blocks until the disk refuses one: no free block is left.
fn top_up(disk: &SmallDisk) {
    use std::io::Write;
    let mut f = std::fs::File::create(disk.at.join("top-up")).unwrap();
    let block = [0u8; 4096];
    loop {
        match f.write_all(&block).and_then(|_| f.sync_data()) {
            Ok(()) => continue,
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => return,
            Err(e) => panic!("filling the disk: {e}"),
        }
    }
}

/// A tar with one file of `mib` MiB of random (incompressible) bytes.
fn random_tar(dir: &Path, name: &str, mib: u64) -> PathBuf {
    let src = dir.join(format!("{name}-src"));
    std::fs::create_dir_all(&src).unwrap();
    run_ok(Command::new("sh").arg("-c").arg(format!("head -c {}M /dev/urandom > {}/blob", mib, src.display())));
    let tar = dir.join(format!("{name}.tar"));
    run_ok(Command::new("tar").arg("-C").arg(&src).arg("-cf").arg(&tar).arg("."));
    std::fs::remove_dir_all(&src).unwrap();
    tar
}

fn import(d: &TestDaemon, tar: &Path, name: &str) -> std::process::Output {
    d.docker().args(["import", &tar.display().to_string(), name]).output().unwrap()
}

/// What the image store holds: images, layers, blobs; and the leftovers it must not keep.
fn store_state(d: &TestDaemon) -> (String, usize, usize) {
    let images = run_ok(d.docker().args(["images", "-a", "--no-trunc", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}"]));
    let count = |p: PathBuf| std::fs::read_dir(p).map(|r| r.count()).unwrap_or(0);
    let layers = std::fs::read_dir(d.data_root.join("layers"))
        .map(|r| r.flatten().filter(|e| e.file_name().len() == 64).count())
        .unwrap_or(0);
    (images, layers, count(d.data_root.join("content/blobs/sha256")))
}

fn assert_no_leftovers(d: &TestDaemon) {
    for dir in ["content/ingest", "layers/.staging", "layers/.trash"] {
        let p = d.data_root.join(dir);
        let left: Vec<_> = std::fs::read_dir(&p).map(|r| r.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
        assert!(left.is_empty(), "{} keeps {:?} after a failed operation", p.display(), left);
    }
}

fn assert_enospc(out: &std::process::Output, what: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{what} succeeded on a full disk");
    assert!(err.contains(ENOSPC), "{what}: the error does not say {ENOSPC:?}: {err}");
}

#[test]
fn import_bigger_than_the_disk_fails_cleanly_then_fits() {
    let (d, disk) = daemon_on_small_disk(128, &["--min-free-space", "0"]);
    let tar = random_tar(&d.dir, "big", 40);
    let before = store_state(&d);
    let ballast = ballast(&disk, 30 << 20);

    let out = import(&d, &tar, "big:1");
    assert_enospc(&out, "import");
    assert!(ping(&d.socket), "daemon stopped answering:\n{}", d.log());
    assert_eq!(store_state(&d), before, "a failed import left something behind");
    assert_no_leftovers(&d);

    // The same with `docker load` of a saved image... made once there is room.
    std::fs::remove_file(&ballast).unwrap();
    let out = import(&d, &tar, "big:1");
    assert!(out.status.success(), "import after freeing space: {}", String::from_utf8_lossy(&out.stderr));
    run_ok(d.docker().args(["image", "inspect", "big:1"]));
    assert!(!d.log().contains("panicked"), "{}", d.log());
}

#[test]
fn load_bigger_than_the_disk_fails_cleanly_then_fits() {
    let (d, disk) = daemon_on_small_disk(160, &["--min-free-space", "0"]);
    let tar = random_tar(&d.dir, "big", 24);
    let out = import(&d, &tar, "big:1");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let saved = d.dir.join("saved.tar");
    run_ok(d.docker().args(["save", "-o", &saved.display().to_string(), "big:1"]));
    run_ok(d.docker().args(["rmi", "big:1"]));
    let before = store_state(&d);
    let ballast = ballast(&disk, 16 << 20);

    let out = d.docker().args(["load", "-i", &saved.display().to_string()]).output().unwrap();
    assert_enospc(&out, "load");
    assert!(ping(&d.socket));
    assert_eq!(store_state(&d), before, "a failed load left something behind");
    assert_no_leftovers(&d);

    std::fs::remove_file(&ballast).unwrap();
    run_ok(d.docker().args(["load", "-i", &saved.display().to_string()]));
    run_ok(d.docker().args(["image", "inspect", "big:1"]));
}

#[test]
fn the_free_space_margin_refuses_a_layer_with_the_same_text() {
    // 64 MiB kept free; 48 MiB left: a 1 MiB layer fits the disk, not the margin.
    // (The margin is checked when a layer starts and every 64 MiB of it after. The
    // layer is small so that the CLI has sent all of it when the refusal comes: a
    // refusal before the body is read closes the connection, and a client still
    // writing a large body sees "broken pipe" instead of the answer.)
    let (d, disk) = daemon_on_small_disk(128, &["--min-free-space", "64m"]);
    let tar = random_tar(&d.dir, "mid", 1);
    let before = store_state(&d);
    let ballast = ballast(&disk, 48 << 20);
    let out = import(&d, &tar, "mid:1");
    assert_enospc(&out, "import into the margin");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("MiB free"), "{err}");
    assert!(disk.free() > 40 << 20, "the margin should stop it long before the disk is full: {}", disk.free());
    assert_eq!(store_state(&d), before);
    assert_no_leftovers(&d);
    // Room again: the same import goes through.
    std::fs::remove_file(&ballast).unwrap();
    let out = import(&d, &tar, "mid:1");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn container_logging_until_the_disk_is_full() {
    let (d, disk) = daemon_on_small_disk(128, &["--min-free-space", "0"]);
    d.busybox_image("busybox:latest");
    ballast(&disk, 24 << 20);
    // No rotation: the log grows until the disk is full.
    run_ok(d.docker().args(["run", "-d", "--name", "chatty", "--log-opt", "max-size=-1", "busybox", "sh", "-c", "echo first; yes 0123456789012345678901234567890123456789012345678901234567890123456789"]));
    let deadline = Instant::now() + Duration::from_secs(60);
    while disk.free() > 1 << 20 {
        assert!(Instant::now() < deadline, "the log did not fill the disk (free {})", disk.free());
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(500));
    // What the log's last writes left (up to a MiB: enough for a container's few small
    // files, which once let the run below succeed) is taken too.
    top_up(&disk);
    // The daemon serves; the container's log can be read; a full disk says so.
    assert!(ping(&d.socket));
    run_ok(d.docker().args(["ps", "-a"]));
    let head = d.docker().args(["logs", "chatty"]).stdout(Stdio::piped()).output().unwrap();
    assert!(head.stdout.starts_with(b"first\n"), "logs: {:?}", String::from_utf8_lossy(&head.stdout[..head.stdout.len().min(200)]));
    let out = d.docker().args(["run", "--rm", "busybox", "true"]).output().unwrap();
    assert_enospc(&out, "run on a full disk");
    // Freeing the space (removing the container and its log) makes room again.
    run_ok(d.docker().args(["rm", "-f", "chatty"]));
    assert!(disk.free() > 20 << 20, "rm -f did not free the log: {}", disk.free());
    assert_eq!(run_ok(d.docker().args(["run", "--rm", "busybox", "echo", "ok"])), "ok\n");
    assert!(!d.log().contains("panicked"), "{}", d.log());
}

#[test]
fn commit_that_does_not_fit_fails_cleanly_then_fits() {
    let (d, disk) = daemon_on_small_disk(128, &["--min-free-space", "0"]);
    d.busybox_image("busybox:latest");
    run_ok(d.docker().args(["run", "--name", "writer", "busybox", "sh", "-c", "head -c 24m /dev/urandom > /blob"]));
    let before = store_state(&d);
    let ballast = ballast(&disk, 12 << 20);
    let out = d.docker().args(["commit", "writer", "committed:1"]).output().unwrap();
    assert_enospc(&out, "commit");
    assert!(ping(&d.socket));
    assert_eq!(store_state(&d), before, "a failed commit left something behind");
    assert_no_leftovers(&d);
    std::fs::remove_file(&ballast).unwrap();
    run_ok(d.docker().args(["commit", "writer", "committed:1"]));
    assert_eq!(run_ok(d.docker().args(["run", "--rm", "committed:1", "sh", "-c", "wc -c < /blob"])).trim(), (24u64 << 20).to_string());
}

#[test]
fn pull_that_does_not_fit_fails_cleanly_then_fits() {
    // The image is pushed to a registry on loopback from a daemon with room.
    let reg = berth_testutil::registry::Registry::berth(bin());
    let src = TestDaemon::start(bin());
    let tar = random_tar(&src.dir, "big", 40);
    let name = format!("{}/big/pulled:1", reg.addr);
    let out = import(&src, &tar, &name);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    run_ok(src.docker().args(["push", &name]));

    let (d, disk) = daemon_on_small_disk(128, &["--min-free-space", "0"]);
    let before = store_state(&d);
    let ballast = ballast(&disk, 30 << 20);
    let out = d.docker().args(["pull", &name]).output().unwrap();
    assert_enospc(&out, "pull");
    assert!(ping(&d.socket), "daemon stopped answering:\n{}", d.log());
    assert_eq!(store_state(&d), before, "a failed pull left something behind");
    assert_no_leftovers(&d);

    std::fs::remove_file(&ballast).unwrap();
    run_ok(d.docker().args(["pull", &name]));
    let size: u64 = run_ok(d.docker().args(["image", "inspect", "-f", "{{.Size}}", &name])).trim().parse().unwrap();
    assert!(size >= 40 << 20, "the pulled image is {size} bytes");
    assert!(!d.log().contains("panicked"), "{}", d.log());
}

#[test]
fn build_that_does_not_fit_fails_cleanly_then_fits() {
    let (d, disk) = daemon_on_small_disk(128, &["--min-free-space", "0"]);
    d.busybox_image("busybox:latest");
    let ctx = d.dir.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    // The RUN step's 24 MiB fit in the container; its layer (24 MiB more) does not.
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nRUN head -c 24m /dev/urandom > /blob\n").unwrap();
    let before = store_state(&d);
    let ballast = ballast(&disk, 36 << 20);
    let out = d.docker().args(["build", "-q", "-t", "built:1"]).arg(&ctx).output().unwrap();
    assert_enospc(&out, "build");
    assert!(ping(&d.socket), "daemon stopped answering:\n{}", d.log());
    assert_eq!(store_state(&d), before, "a failed build left an image, layer or blob behind");
    assert_no_leftovers(&d);
    assert_eq!(run_ok(d.docker().args(["ps", "-aq"])).trim(), "", "the build's step container is left");

    std::fs::remove_file(&ballast).unwrap();
    run_ok(d.docker().args(["build", "-q", "-t", "built:1"]).arg(&ctx));
    assert_eq!(run_ok(d.docker().args(["run", "--rm", "built:1", "sh", "-c", "wc -c < /blob"])).trim(), (24u64 << 20).to_string());
    assert!(!d.log().contains("panicked"), "{}", d.log());
}
