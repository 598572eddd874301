//! Image commands: images, pull, push, tag, rmi, load, save, import, history,
//! inspect, prune, build.

use std::collections::BTreeMap;

use clap::{ArgAction, Args};

use super::{ago, familiar, filters_json, value};
use crate::client::{Call, Client, JsonLines, reader_body};
use crate::config;
use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::format::{self, Map, Value, ellipsis, template::context, truncate_id, units};
use crate::io::Sink;
use crate::opts::parse;
use crate::stream::progress::ProgressDisplay;
use crate::stream::term;

/// Renders a JSON-message stream (pull, push, load, build, import). `aux` messages
/// go to `on_aux`. The stream's error, if any, becomes the command's error.
pub async fn show_progress(
    res: hyper::Response<hyper::body::Incoming>,
    out: Sink,
    terminal: bool,
    mut on_aux: impl FnMut(&serde_json::Value),
) -> Result<()> {
    let width = if terminal { term::stdout_size().map(|(_, w)| w) } else { None };
    let mut display = ProgressDisplay::new(out, terminal, width);
    let mut lines = JsonLines::new(res);
    while let Some(line) = lines.next_line().await? {
        let jm: berth_types::progress::JsonMessage = match serde_json::from_slice(&line) {
            Ok(m) => m,
            Err(e) => return Err(Error::msg(format!("unexpected progress message from the daemon: {e}"))),
        };
        if let Some(aux) = &jm.aux {
            on_aux(aux);
            continue;
        }
        display.message(&jm).map_err(Error::Msg)?;
    }
    Ok(())
}

fn auth_header(ctx: &Ctx, image: &str) -> String {
    let key = config::registry_key(image);
    config::registry_auth_header(ctx.config.credentials(&key).as_ref())
}

/// `POST /images/create?fromImage=...&tag=...`, showing progress on `out`.
#[allow(clippy::too_many_arguments)]
pub async fn pull_image(
    ctx: &Ctx,
    c: &Client,
    image: &str,
    platform: &str,
    quiet: bool,
    all_tags: bool,
    out: Sink,
    print_ref: bool,
) -> Result<()> {
    parse::validate_reference(image).map_err(Error::Msg)?;
    let (name, mut tag) = parse::split_reference(image);
    if all_tags && !tag.is_empty() {
        return Err(Error::msg("tag can't be used with --all-tags/-a"));
    }
    if tag.is_empty() && !all_tags {
        tag = "latest".into();
    }
    let call = Call::post("/images/create")
        .query("fromImage", normalized_name(&name))
        .query_opt("tag", &tag)
        .query_opt("platform", platform)
        .header("X-Registry-Auth", &auth_header(ctx, image));
    let res = c.send(call).await?;
    let terminal = match &out {
        Sink::Stderr => std::io::IsTerminal::is_terminal(&std::io::stderr()),
        Sink::Stdout => ctx.io.stdout_tty,
        Sink::Buffer(_) => false,
    };
    if quiet {
        show_progress(res, Sink::Buffer(Default::default()), false, |_| {}).await?;
    } else {
        show_progress(res, out.clone(), terminal, |_| {}).await?;
    }
    if print_ref {
        let full = if tag.is_empty() {
            name
        } else if tag.contains(':') {
            format!("{name}@{tag}")
        } else {
            format!("{name}:{tag}")
        };
        let mut o = out;
        let _ = std::io::Write::write_all(&mut o, format!("{full}\n").as_bytes());
    }
    Ok(())
}

/// docker's `ParseNormalizedNamed` for a repository: `busybox` →
/// `docker.io/library/busybox`, `me/app` → `docker.io/me/app`; names with a registry
/// (a first part with `.` or `:`, or `localhost`) stay.
pub fn normalized_name(name: &str) -> String {
    match name.split_once('/') {
        None => format!("docker.io/library/{name}"),
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => name.to_string(),
        Some(_) => format!("docker.io/{name}"),
    }
}

#[derive(Debug, Clone, Args)]
#[command(about = "Download an image from a registry")]
pub struct PullArgs {
    #[arg(short, long = "all-tags", action = ArgAction::SetTrue, help = "Download all tagged images in the repository")]
    pub all_tags: bool,
    #[arg(long = "disable-content-trust", hide = true, action = ArgAction::SetTrue)]
    pub disable_content_trust: bool,
    #[arg(long, value_name = "string", default_value = "", hide_default_value = true, help = "Set platform if server is multi-platform capable")]
    pub platform: String,
    #[arg(short, long, action = ArgAction::SetTrue, help = "Suppress verbose output")]
    pub quiet: bool,
    #[arg(value_name = "NAME[:TAG|@DIGEST]")]
    pub image: String,
}

pub async fn pull(ctx: &Ctx, a: PullArgs) -> Result<()> {
    let c = ctx.client().await?;
    pull_image(ctx, c, &a.image, &a.platform, a.quiet, a.all_tags, ctx.io.out.clone(), true).await
}

#[derive(Debug, Clone, Args)]
#[command(about = "Upload an image to a registry")]
pub struct PushArgs {
    #[arg(short, long = "all-tags", action = ArgAction::SetTrue, help = "Push all tags of an image to the repository")]
    pub all_tags: bool,
    #[arg(long = "disable-content-trust", hide = true, action = ArgAction::SetTrue)]
    pub disable_content_trust: bool,
    #[arg(long, value_name = "string", default_value = "", hide_default_value = true, help = "Push a platform-specific manifest as a single-platform image to the registry")]
    pub platform: String,
    #[arg(short, long, action = ArgAction::SetTrue, help = "Suppress verbose output")]
    pub quiet: bool,
    #[arg(value_name = "NAME[:TAG]")]
    pub image: String,
}

pub async fn push(ctx: &Ctx, a: PushArgs) -> Result<()> {
    parse::validate_reference(&a.image).map_err(Error::Msg)?;
    let (name, mut tag) = parse::split_reference(&a.image);
    if a.all_tags && !tag.is_empty() {
        return Err(Error::msg("tag can't be used with --all-tags/-a"));
    }
    if tag.is_empty() && !a.all_tags {
        tag = "latest".into();
    }
    let c = ctx.client().await?;
    let call = Call::post(format!("/images/{name}/push"))
        .query_opt("tag", &tag)
        .query_opt("platform", &a.platform)
        .header("X-Registry-Auth", &auth_header(ctx, &a.image));
    let res = c.send(call).await?;
    if a.quiet {
        show_progress(res, Sink::Buffer(Default::default()), false, |_| {}).await?;
        ctx.io.println(&format!("{name}:{tag}"));
        Ok(())
    } else {
        show_progress(res, ctx.io.out.clone(), ctx.io.stdout_tty, |_| {}).await
    }
}

#[derive(Debug, Clone, Args)]
#[command(about = "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE")]
pub struct TagArgs {
    #[arg(value_name = "SOURCE_IMAGE[:TAG]")]
    pub source: String,
    #[arg(value_name = "TARGET_IMAGE[:TAG]")]
    pub target: String,
}

pub async fn tag(ctx: &Ctx, a: TagArgs) -> Result<()> {
    parse::validate_reference(&a.target).map_err(Error::Msg)?;
    let (repo, mut tag) = parse::split_reference(&a.target);
    if tag.contains(':') {
        return Err(Error::msg("refusing to create a tag with a digest reference"));
    }
    if tag.is_empty() {
        tag = "latest".into();
    }
    let c = ctx.client().await?;
    c.bytes(Call::post(format!("/images/{}/tag", a.source)).query("repo", repo).query("tag", tag)).await?;
    Ok(())
}

#[derive(Debug, Clone, Args)]
#[command(about = "Remove one or more images")]
pub struct RmiArgs {
    #[arg(short, long, action = ArgAction::SetTrue, help = "Force removal of the image")]
    pub force: bool,
    #[arg(long = "no-prune", action = ArgAction::SetTrue, help = "Do not delete untagged parents")]
    pub no_prune: bool,
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

pub async fn rmi(ctx: &Ctx, a: RmiArgs) -> Result<()> {
    let c = ctx.client().await?;
    let mut errors = Vec::new();
    for img in &a.images {
        let call = Call::delete(format!("/images/{img}")).flag("force", a.force).flag("noprune", a.no_prune);
        match c.bytes(call).await {
            Ok(b) => {
                let v = value(&b)?;
                if let Value::List(items) = v {
                    for it in items {
                        let u = it.str_at(&["Untagged"]);
                        if !u.is_empty() {
                            ctx.io.println(&format!("Untagged: {u}"));
                        }
                        let d = it.str_at(&["Deleted"]);
                        if !d.is_empty() {
                            ctx.io.println(&format!("Deleted: {d}"));
                        }
                    }
                }
            }
            Err(e @ Error::Connect { .. }) => return Err(e),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(Error::Msg(errors.join("\n"))) }
}

#[derive(Debug, Clone, Args)]
#[command(about = "List images")]
pub struct ImagesArgs {
    #[arg(short, long, action = ArgAction::SetTrue, help = "Show all images (default hides intermediate images)")]
    pub all: bool,
    #[arg(long, action = ArgAction::SetTrue, help = "Show digests")]
    pub digests: bool,
    #[arg(short, long, value_name = "filter", help = "Filter output based on conditions provided")]
    pub filter: Vec<String>,
    #[arg(long, value_name = "string", help = "Format output using a custom template")]
    pub format: Option<String>,
    #[arg(long = "no-trunc", action = ArgAction::SetTrue, help = "Don't truncate output")]
    pub no_trunc: bool,
    #[arg(short, long, action = ArgAction::SetTrue, help = "Only show image IDs")]
    pub quiet: bool,
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub repository: Option<String>,
}

fn image_headers() -> Value {
    Value::Map(
        Map::new()
            .with("ID", "IMAGE ID")
            .with("Repository", "REPOSITORY")
            .with("Tag", "TAG")
            .with("Digest", "DIGEST")
            .with("CreatedSince", "CREATED")
            .with("CreatedAt", "CREATED AT")
            .with("Size", "SIZE")
            .with("Containers", "CONTAINERS")
            .with("VirtualSize", "VIRTUAL SIZE")
            .with("SharedSize", "SHARED SIZE")
            .with("UniqueSize", "UNIQUE SIZE"),
    )
}

fn size_or_na(n: i64) -> String {
    if n == -1 { "N/A".into() } else { units::human_size_precision(n as f64, 3) }
}

fn image_row(img: &Value, repo: &str, tag: &str, digest: &str, trunc: bool) -> Value {
    let id = img.str_at(&["Id"]);
    let created = img.i64_at(&["Created"]);
    let size = img.i64_at(&["Size"]);
    let shared = img.i64_at(&["SharedSize"]);
    let containers = img.i64_at(&["Containers"]);
    context(vec![
        ("Containers", Value::from(if containers == -1 { "N/A".to_string() } else { containers.to_string() })),
        ("CreatedAt", Value::from(super::go_time_string(created))),
        ("CreatedSince", Value::from(ago(created))),
        ("Digest", Value::from(digest)),
        ("ID", Value::from(if trunc { truncate_id(&id) } else { id })),
        ("Repository", Value::from(repo)),
        ("SharedSize", Value::from(size_or_na(shared))),
        ("Size", Value::from(units::human_size_precision(size as f64, 3))),
        ("Tag", Value::from(tag)),
        ("UniqueSize", Value::from(if shared == -1 { "N/A".to_string() } else { units::human_size_precision((size - shared) as f64, 3) })),
        ("VirtualSize", Value::from(units::human_size_precision(size as f64, 3))),
    ])
}

/// One row per repository:tag (and per digest with `--digests`), as docker's
/// `imageFormat` expands an image.
pub fn image_rows(img: &Value, trunc: bool, digests: bool) -> Vec<Value> {
    let tags: Vec<String> = img.list_at(&["RepoTags"]).iter().map(Value::display).collect();
    let dgsts: Vec<String> = img.list_at(&["RepoDigests"]).iter().map(Value::display).collect();
    let dangling = (tags.is_empty() && dgsts.is_empty())
        || (tags.len() == 1 && tags[0] == "<none>:<none>" && dgsts.len() == 1 && dgsts[0] == "<none>@<none>");
    if dangling {
        return vec![image_row(img, "<none>", "<none>", "<none>", trunc)];
    }
    let mut repo_tags: Vec<(String, Vec<String>)> = Vec::new();
    for t in &tags {
        let (repo, tag) = parse::split_reference(t);
        if tag.is_empty() || tag.contains(':') {
            continue;
        }
        let repo = familiar(&repo);
        match repo_tags.iter_mut().find(|(r, _)| *r == repo) {
            Some((_, v)) => v.push(tag),
            None => repo_tags.push((repo, vec![tag])),
        }
    }
    let mut repo_digests: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for d in &dgsts {
        if let Some((repo, digest)) = d.split_once('@') {
            repo_digests.entry(familiar(repo)).or_default().push(digest.to_string());
        }
    }
    let mut rows = Vec::new();
    for (repo, tags) in &repo_tags {
        let ds = repo_digests.remove(repo).unwrap_or_default();
        for tag in tags {
            if !digests || ds.is_empty() {
                rows.push(image_row(img, repo, tag, "<none>", trunc));
            } else {
                for d in &ds {
                    rows.push(image_row(img, repo, tag, d, trunc));
                }
            }
        }
    }
    for (repo, ds) in repo_digests {
        if digests {
            for d in ds {
                rows.push(image_row(img, &repo, "<none>", &d, trunc));
            }
        } else {
            rows.push(image_row(img, &repo, "<none>", "", trunc));
        }
    }
    rows
}

pub async fn images(ctx: &Ctx, a: ImagesArgs) -> Result<()> {
    let format = if a.quiet {
        "{{.ID}}".to_string()
    } else {
        a.format.clone().or_else(|| ctx.config.string("imagesFormat").map(str::to_string)).unwrap_or_else(|| "table".into())
    };
    let format = if format == "table" {
        if a.digests {
            "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}".to_string()
        } else {
            "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}".to_string()
        }
    } else {
        format
    };
    format::Template::parse(&format::prepare_format(&format).0)
        .map_err(|e| Error::msg(format!("failed to parse template: {e}")))?;
    let mut filters = a.filter.clone();
    if let Some(r) = &a.repository {
        filters.push(format!("reference={r}"));
    }
    let c = ctx.client().await?;
    let mut call = Call::get("/images/json").flag("all", a.all);
    if let Some(f) = filters_json(&filters)? {
        call = call.query("filters", f);
    }
    let list = value(&c.bytes(call).await?)?;
    let mut rows = Vec::new();
    if let Value::List(items) = &list {
        for img in items {
            // Like docker, one row (and with -q one ID) per repository:tag.
            rows.extend(image_rows(img, !a.no_trunc, a.digests));
        }
    }
    ctx.io.print(&format::render_list(&format, &image_headers(), &rows)?);
    Ok(())
}

#[derive(Debug, Clone, Args)]
#[command(about = "Load an image from a tar archive or STDIN")]
pub struct LoadArgs {
    #[arg(short, long, value_name = "string", help = "Read from tar archive file, instead of STDIN")]
    pub input: Option<String>,
    #[arg(long, value_name = "stringSlice", help = "Load only the given platform(s)")]
    pub platform: Vec<String>,
    #[arg(short, long, action = ArgAction::SetTrue, help = "Suppress the load output")]
    pub quiet: bool,
}

pub async fn load(ctx: &Ctx, a: LoadArgs) -> Result<()> {
    let body = match &a.input {
        Some(p) => {
            let f = tokio::fs::File::open(p).await.map_err(|e| Error::msg(format!("open {p}: {}", parse::io_msg(&e))))?;
            reader_body(f)
        }
        None => {
            if ctx.io.stdin_tty {
                return Err(Error::msg("requested load from stdin, but stdin is empty"));
            }
            reader_body(tokio::io::stdin())
        }
    };
    let c = ctx.client().await?;
    let quiet = a.quiet || !ctx.io.stdout_tty;
    let call = Call::post("/images/load").flag("quiet", quiet).body(body, "application/x-tar");
    let res = c.send(call).await?;
    let json = res
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    if json {
        show_progress(res, ctx.io.out.clone(), ctx.io.stdout_tty, |_| {}).await
    } else {
        let body = crate::client::read_body(res).await?;
        ctx.io.print(&String::from_utf8_lossy(&body));
        Ok(())
    }
}

#[derive(Debug, Clone, Args)]
#[command(about = "Save one or more images to a tar archive (streamed to STDOUT by default)")]
pub struct SaveArgs {
    #[arg(short, long, value_name = "string", help = "Write to a file, instead of STDOUT")]
    pub output: Option<String>,
    #[arg(long, value_name = "stringSlice", help = "Save only the given platform(s)")]
    pub platform: Vec<String>,
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

pub async fn save(ctx: &Ctx, a: SaveArgs) -> Result<()> {
    if a.output.is_none() && ctx.io.stdout_tty {
        return Err(Error::msg("cowardly refusing to save to a terminal. Use the -o flag or redirect"));
    }
    let c = ctx.client().await?;
    let mut call = Call::get("/images/get");
    for i in &a.images {
        call = call.query("names", i.clone());
    }
    let res = c.send(call).await?;
    super::container::save_stream(ctx, res, a.output.as_deref()).await
}

#[derive(Debug, Clone, Args)]
#[command(about = "Import the contents from a tarball to create a filesystem image")]
pub struct ImportArgs {
    #[arg(short, long, value_name = "list", help = "Apply Dockerfile instruction to the created image")]
    pub change: Vec<String>,
    #[arg(short, long, value_name = "string", help = "Set commit message for imported image")]
    pub message: Option<String>,
    #[arg(long, value_name = "string", default_value = "", hide_default_value = true, help = "Set platform if server is multi-platform capable")]
    pub platform: String,
    #[arg(value_name = "file|URL|-")]
    pub source: String,
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub repository: Option<String>,
}

pub async fn import(ctx: &Ctx, a: ImportArgs) -> Result<()> {
    let (repo, tag) = match &a.repository {
        Some(r) => {
            parse::validate_reference(r).map_err(Error::Msg)?;
            parse::split_reference(r)
        }
        None => (String::new(), String::new()),
    };
    let mut call = Call::post("/images/create")
        .query_opt("repo", &repo)
        .query_opt("tag", &tag)
        .query_opt("message", a.message.as_deref().unwrap_or(""))
        .query_opt("platform", &a.platform);
    for ch in &a.change {
        call = call.query("changes", ch.clone());
    }
    let call = if a.source == "-" {
        call.query("fromSrc", "-").body(reader_body(tokio::io::stdin()), "application/x-tar")
    } else if a.source.starts_with("http://") || a.source.starts_with("https://") {
        call.query("fromSrc", a.source.clone())
    } else {
        let f = tokio::fs::File::open(&a.source)
            .await
            .map_err(|e| Error::msg(format!("open {}: {}", a.source, parse::io_msg(&e))))?;
        call.query("fromSrc", "-").body(reader_body(f), "application/x-tar")
    };
    let c = ctx.client().await?;
    let res = c.send(call).await?;
    show_progress(res, ctx.io.out.clone(), ctx.io.stdout_tty, |_| {}).await
}

#[derive(Debug, Clone, Args)]
#[command(about = "Show the history of an image")]
pub struct HistoryArgs {
    #[arg(long, value_name = "string", help = "Format output using a custom template")]
    pub format: Option<String>,
    #[arg(short = 'H', long, value_name = "bool", default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", require_equals = true, help = "Print sizes and dates in human readable format")]
    pub human: bool,
    #[arg(long = "no-trunc", action = ArgAction::SetTrue, help = "Don't truncate output")]
    pub no_trunc: bool,
    #[arg(long, value_name = "string", default_value = "", hide_default_value = true, help = "Show history for the given platform")]
    pub platform: String,
    #[arg(short, long, action = ArgAction::SetTrue, help = "Only show image IDs")]
    pub quiet: bool,
    #[arg(value_name = "IMAGE")]
    pub image: String,
}

pub fn history_row(h: &Value, trunc: bool, human: bool) -> Value {
    let id = h.str_at(&["Id"]);
    let created = h.i64_at(&["Created"]);
    let mut created_by = h.str_at(&["CreatedBy"]).replace('\t', " ");
    if trunc {
        created_by = ellipsis(&created_by, 45);
    }
    let size = h.i64_at(&["Size"]);
    let created_since = if human {
        ago(created)
    } else {
        chrono::DateTime::from_timestamp(created, 0).map(|t| t.to_rfc3339()).unwrap_or_default()
    };
    context(vec![
        ("Comment", Value::from(h.str_at(&["Comment"]))),
        ("CreatedAt", Value::from(chrono::DateTime::from_timestamp(created, 0).map(|t| t.to_rfc3339()).unwrap_or_default())),
        ("CreatedBy", Value::from(created_by)),
        ("CreatedSince", Value::from(created_since)),
        ("ID", Value::from(if trunc && id != "<missing>" { truncate_id(&id) } else { id })),
        ("Size", Value::from(if human { units::human_size_precision(size as f64, 3) } else { size.to_string() })),
    ])
}

pub async fn history(ctx: &Ctx, a: HistoryArgs) -> Result<()> {
    let format = if a.quiet {
        "{{.ID}}".to_string()
    } else {
        a.format.clone().unwrap_or_else(|| "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}".into())
    };
    let format = if format == "table" { "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}".into() } else { format };
    let c = ctx.client().await?;
    let v = value(&c.bytes(Call::get(format!("/images/{}/history", a.image)).query_opt("platform", &a.platform)).await?)?;
    let rows: Vec<Value> = match &v {
        Value::List(l) => l.iter().map(|h| history_row(h, !a.no_trunc, a.human)).collect(),
        _ => Vec::new(),
    };
    let headers = Value::Map(
        Map::new()
            .with("ID", "IMAGE")
            .with("CreatedSince", "CREATED")
            .with("CreatedAt", "CREATED AT")
            .with("CreatedBy", "CREATED BY")
            .with("Size", "SIZE")
            .with("Comment", "COMMENT"),
    );
    ctx.io.print(&format::render_list(&format, &headers, &rows)?);
    Ok(())
}

#[derive(Debug, Clone, Args)]
#[command(about = "Display detailed information on one or more images")]
pub struct ImageInspectArgs {
    #[arg(short, long, value_name = "string", help = "Format output using a custom template")]
    pub format: Option<String>,
    #[arg(long, value_name = "string", default_value = "", hide_default_value = true, help = "Inspect a specific platform of the multi-platform image")]
    pub platform: String,
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

pub async fn inspect(ctx: &Ctx, a: ImageInspectArgs) -> Result<()> {
    super::container::inspect_each(ctx, a.format.as_deref(), &a.images, |n| Call::get(format!("/images/{n}/json"))).await
}

#[derive(Debug, Clone, Args)]
#[command(about = "Remove unused images")]
pub struct ImagePruneArgs {
    #[arg(short, long, action = ArgAction::SetTrue, help = "Remove all unused images, not just dangling ones")]
    pub all: bool,
    #[arg(long, value_name = "filter", help = "Provide filter values (e.g. \"until=<timestamp>\")")]
    pub filter: Vec<String>,
    #[arg(short, long, action = ArgAction::SetTrue, help = "Do not prompt for confirmation")]
    pub force: bool,
}

pub async fn prune_images(ctx: &Ctx, all: bool, filter: &[String]) -> Result<(Vec<String>, u64)> {
    let mut filters = filter.to_vec();
    filters.push(format!("dangling={}", !all));
    let c = ctx.client().await?;
    let mut call = Call::post("/images/prune");
    if let Some(f) = filters_json(&filters)? {
        call = call.query("filters", f);
    }
    let v = value(&c.bytes(call).await?)?;
    let mut lines = Vec::new();
    for d in v.list_at(&["ImagesDeleted"]) {
        let u = d.str_at(&["Untagged"]);
        if !u.is_empty() {
            lines.push(format!("untagged: {u}"));
        }
        let del = d.str_at(&["Deleted"]);
        if !del.is_empty() {
            lines.push(format!("deleted: {del}"));
        }
    }
    Ok((lines, v.i64_at(&["SpaceReclaimed"]).max(0) as u64))
}

pub async fn prune(ctx: &Ctx, a: ImagePruneArgs) -> Result<()> {
    let warning = if a.all {
        "WARNING! This will remove all images without at least one container associated to them."
    } else {
        "WARNING! This will remove all dangling images."
    };
    if !super::confirm(ctx, warning, a.force) {
        return Ok(());
    }
    let (lines, space) = prune_images(ctx, a.all, &a.filter).await?;
    if !lines.is_empty() {
        ctx.io.println("Deleted Images:");
        for l in &lines {
            ctx.io.println(l);
        }
        ctx.io.println("");
    }
    ctx.io.println(&format!("Total reclaimed space: {}", units::human_size(space as f64)));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_table_matches_the_trace() {
        let trace = include_str!("../../../../fixtures/api-traces/images.txt");
        let body = trace.lines().find(|l| l.starts_with("[{")).expect("images body");
        let Value::List(items) = Value::from_json_str(body).unwrap() else { panic!() };
        let rows: Vec<Value> = items.iter().flat_map(|i| image_rows(i, true, false)).collect();
        let seen: Vec<String> = trace
            .lines()
            .skip_while(|l| !l.starts_with("#   $ docker images"))
            .skip(2)
            .take_while(|l| !l.starts_with("#   [exit"))
            .map(|l| l[4..].to_string())
            .collect();
        let t = format::Template::parse("{{.Repository}} {{.Tag}} {{.ID}} {{.Size}}").unwrap();
        let got: Vec<String> = rows.iter().map(|r| t.execute(r).unwrap()).collect();
        let want: Vec<String> = seen
            .iter()
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                format!("{} {} {} {}", f[0], f[1], f[2], f[f.len() - 1])
            })
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn names_normalize_like_docker() {
        assert_eq!(normalized_name("busybox"), "docker.io/library/busybox");
        assert_eq!(normalized_name("me/app"), "docker.io/me/app");
        assert_eq!(normalized_name("127.0.0.1:5000/trace/bb"), "127.0.0.1:5000/trace/bb");
        assert_eq!(normalized_name("localhost/x"), "localhost/x");
        assert_eq!(normalized_name("docker.io/library/busybox"), "docker.io/library/busybox");
    }

    #[test]
    fn dangling_and_digest_rows() {
        let img = Value::from_json_str(r#"{"Id":"sha256:abcdef0123456789","RepoTags":[],"RepoDigests":[],"Size":1000,"Created":0}"#).unwrap();
        let t = format::Template::parse("{{.Repository}}:{{.Tag}}:{{.Digest}}").unwrap();
        assert_eq!(t.execute(&image_rows(&img, true, false)[0]).unwrap(), "<none>:<none>:<none>");
        let img = Value::from_json_str(r#"{"Id":"sha256:ab","RepoTags":["docker.io/library/busybox:latest"],"RepoDigests":["busybox@sha256:dd"],"Size":1,"Created":0}"#).unwrap();
        let rows = image_rows(&img, true, true);
        assert_eq!(rows.len(), 1);
        assert_eq!(t.execute(&rows[0]).unwrap(), "busybox:latest:sha256:dd");
    }

    #[test]
    fn history_rows_truncate_like_docker() {
        let h = Value::from_json_str(r#"{"Id":"<missing>","Created":0,"CreatedBy":"/bin/sh -c #(nop)\tCMD [\"sh\"] with a long tail of text here","Size":1984295,"Comment":""}"#).unwrap();
        let t = format::Template::parse("{{.ID}}|{{.CreatedBy}}|{{.Size}}").unwrap();
        assert_eq!(t.execute(&history_row(&h, true, true)).unwrap(), "<missing>|/bin/sh -c #(nop) CMD [\"sh\"] with a long tai…|1.98MB");
        assert_eq!(t.execute(&history_row(&h, true, false)).unwrap().rsplit('|').next().unwrap(), "1984295");
    }
}
