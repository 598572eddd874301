//! A command that cannot run fails create/exec with runc's words (what the docker CLI reads
//! to exit 127 or 126), and leaves nothing behind. Real kernel, run as root.

mod common;

use berth_runtime::{CommandError, CreateOptions, Error, ExecOptions};
use common::*;

fn create_error(args: &[&str]) -> (Error, bool) {
    let b = TestBundle::new(args);
    b.write();
    let e = b.rt.create(&b.id, &b.bundle, CreateOptions { stdio: Some([devnull(), devnull(), devnull()]), ..Default::default() }).unwrap_err();
    let clean = !b.tmp.path().join("state").join(&b.id).exists() && !b.cgroup_dir("pids").exists();
    (e, clean)
}

#[test]
fn create_reports_missing_and_unusable_commands_like_runc() {
    let _s = serial();
    let (e, clean) = create_error(&["foo"]);
    assert!(matches!(&e, Error::Command(CommandError::NotInPath { name }) if name == "foo"), "{e:?}");
    assert_eq!(e.to_string(), r#"unable to start container process: exec: "foo": executable file not found in $PATH"#);
    assert!(clean, "create left state or a cgroup behind");

    let (e, clean) = create_error(&["/no/such"]);
    assert_eq!(e.to_string(), r#"unable to start container process: exec: "/no/such": stat /no/such: no such file or directory"#);
    assert!(clean);

    let (e, clean) = create_error(&["/etc/passwd"]);
    assert_eq!(e.to_string(), r#"unable to start container process: exec: "/etc/passwd": permission denied"#);
    assert!(matches!(&e, Error::Command(c) if c.exit_code() == 126));
    assert!(clean);

    let (e, _) = create_error(&["/etc"]);
    assert_eq!(e.to_string(), r#"unable to start container process: exec: "/etc": permission denied"#);
}

#[test]
fn exec_reports_missing_and_unusable_commands_like_runc() {
    let _s = serial();
    let b = TestBundle::new(&["sleep", "60"]);
    b.write();
    let st = b.rt.run(&b.id, &b.bundle, CreateOptions::default()).unwrap();
    let mut p = b.rt.spec(&b.id).unwrap().process().clone().unwrap();
    let mut exec = |args: &[&str]| {
        p.set_args(Some(args.iter().map(|s| s.to_string()).collect()));
        let opts = ExecOptions { stdio: Some([devnull(), devnull(), devnull()]), ..Default::default() };
        b.rt.exec(&b.id, &p, opts).unwrap_err().to_string()
    };
    let not_found = exec(&["nope"]);
    let missing = exec(&["/bin/nope"]);
    let denied = exec(&["/etc/passwd"]);
    b.rt.kill(&b.id, libc::SIGKILL, false).unwrap();
    wait(st.pid);
    assert_eq!(not_found, r#"unable to start container process: exec: "nope": executable file not found in $PATH"#);
    assert_eq!(missing, r#"unable to start container process: exec: "/bin/nope": stat /bin/nope: no such file or directory"#);
    assert_eq!(denied, r#"unable to start container process: exec: "/etc/passwd": permission denied"#);
}
