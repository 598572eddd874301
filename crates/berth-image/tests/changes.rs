//! `import --change` and `commit --change` with HEALTHCHECK and `$VAR` expansion, on a
//! real store: what lands in the image config (and so in `docker inspect`).

mod common;

use berth_image::{CommitOptions, ContainerConfig, ErrorKind, HealthConfig, ImportOptions, SnapshotOptions};
use common::*;

#[test]
fn import_and_commit_changes_with_healthcheck_and_variables() {
    let ts = TestStore::new("bi-chg");
    let tar = berth_testutil::busybox_rootfs_tar(ts.dir.path());
    let changes = [
        "ENV APP=/opt/app PATH=/usr/bin:/bin",
        "ENV DATA=$APP/data",
        "WORKDIR $DATA",
        r#"HEALTHCHECK --interval=10s --retries=2 CMD ["/bin/test", "-d", "/opt/app"]"#,
        "LABEL where=$APP",
    ];
    let id = ts
        .store()
        .import(
            &tar[..],
            &ImportOptions {
                changes: changes.iter().map(|s| s.to_string()).collect(),
                tag: Some("local/chg:1".into()),
                ..Default::default()
            },
        )
        .unwrap();
    let insp = ts.store().inspect("local/chg:1").unwrap();
    assert_eq!(insp.config.working_dir, "/opt/app/data");
    assert_eq!(insp.config.env, Some(vec!["APP=/opt/app".into(), "PATH=/usr/bin:/bin".into(), "DATA=/opt/app/data".into()]));
    assert_eq!(insp.config.labels.as_ref().unwrap()["where"], "/opt/app");
    let hc = insp.config.healthcheck.clone().unwrap();
    assert_eq!(
        hc,
        HealthConfig {
            test: Some(vec!["CMD".into(), "/bin/test".into(), "-d".into(), "/opt/app".into()]),
            interval: 10_000_000_000,
            retries: 2,
            ..Default::default()
        }
    );
    // The config blob (the image ID's bytes) carries Docker's JSON for it.
    let bytes = String::from_utf8(ts.store().config_bytes(&id).unwrap()).unwrap();
    assert!(
        bytes.contains(r#""Cmd":null,"Healthcheck":{"Test":["CMD","/bin/test","-d","/opt/app"],"Interval":10000000000,"Retries":2},"Image""#),
        "{bytes}"
    );

    // Commit on top: the image's env is what `$VAR` sees; NONE turns the check off.
    let cdir = ts.dir.path().join("c1");
    ts.store().prepare_snapshot("c1", "local/chg:1", &cdir, &SnapshotOptions::default()).unwrap();
    let child = ts
        .store()
        .commit(
            "c1",
            &CommitOptions {
                changes: vec!["ENV LOGS=${DATA}/logs".into(), "VOLUME $LOGS".into(), "HEALTHCHECK NONE".into()],
                tag: Some("local/chg:2".into()),
                ..Default::default()
            },
        )
        .unwrap();
    let c = ts.store().config(&child.to_string()).unwrap().config.unwrap();
    assert!(c.env.as_ref().unwrap().contains(&"LOGS=/opt/app/data/logs".to_string()), "{:?}", c.env);
    assert!(c.volumes.as_ref().unwrap().contains_key("/opt/app/data/logs"));
    assert_eq!(c.healthcheck.unwrap().test, Some(vec!["NONE".into()]));

    // The container's own config (what the engine passes) is expanded against too.
    let child2 = ts
        .store()
        .commit(
            "c1",
            &CommitOptions {
                config: Some(ContainerConfig { env: Some(vec!["MODE=fast".into()]), ..Default::default() }),
                changes: vec!["LABEL mode=$MODE".into(), "HEALTHCHECK --timeout=3s CMD check $MODE".into()],
                ..Default::default()
            },
        )
        .unwrap();
    let c = ts.store().config(&child2.to_string()).unwrap().config.unwrap();
    assert_eq!(c.labels.unwrap()["mode"], "fast");
    let hc = c.healthcheck.unwrap();
    assert_eq!(hc.test, Some(vec!["CMD-SHELL".into(), "check $MODE".into()]));
    assert_eq!(hc.timeout, 3_000_000_000);

    // A bad change is refused before anything is stored.
    let images = ts.store().list().unwrap().len();
    let e = ts
        .store()
        .import(&tar[..], &ImportOptions { changes: vec!["HEALTHCHECK --interval=1 CMD x".into()], ..Default::default() })
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(e.to_string().contains("missing unit in duration"), "{e}");
    let e = ts
        .store()
        .commit("c1", &CommitOptions { changes: vec!["WORKDIR ${UNSET:?needed}".into()], ..Default::default() })
        .unwrap_err();
    assert!(e.to_string().contains("UNSET: needed"), "{e}");
    assert_eq!(ts.store().list().unwrap().len(), images);
    ts.store().remove_snapshot("c1").unwrap();
}
