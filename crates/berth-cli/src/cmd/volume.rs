//! `volume create|ls|inspect|rm|prune`.

use clap::{ArgAction, Args, Subcommand};

use super::{filters_json, for_each, value};
use crate::client::Call;
use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::format::{self, Map, Value, template::context, units};
use crate::opts::parse;

#[derive(Debug, Clone, Subcommand)]
pub enum VolumeCmd {
    /// Create a volume
    Create(CreateArgs),
    /// Display detailed information on one or more volumes
    Inspect(InspectArgs),
    /// List volumes
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Remove unused local volumes
    Prune(PruneArgs),
    /// Remove one or more volumes
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
}

#[derive(Debug, Clone, Args)]
#[command(about = "Create a volume")]
pub struct CreateArgs {
    #[arg(short, long, value_name = "string", default_value = "local", help = "Specify volume driver name")]
    pub driver: String,
    #[arg(long, value_name = "list", help = "Set metadata for a volume")]
    pub label: Vec<String>,
    #[arg(long = "name", hide = true, value_name = "string")]
    pub name_flag: Option<String>,
    #[arg(short, long, value_name = "map", help = "Set driver specific options")]
    pub opt: Vec<String>,
    #[arg(value_name = "VOLUME")]
    pub name: Option<String>,
}

pub async fn create(ctx: &Ctx, a: CreateArgs) -> Result<()> {
    let name = match (&a.name, &a.name_flag) {
        (Some(n), Some(f)) if n != f => {
            return Err(Error::Usage("conflicting options: cannot specify a volume-name through both --name and as a positional arg".to_string()));
        }
        (Some(n), _) | (None, Some(n)) => n.clone(),
        (None, None) => String::new(),
    };
    let body = berth_types::volume::VolumeCreateRequest {
        name,
        driver: a.driver.clone(),
        driver_opts: Some(parse::kv_map(&a.opt)),
        labels: Some(parse::kv_map(&a.label)),
    };
    let c = ctx.client().await?;
    let v = value(&c.bytes(Call::post("/volumes/create").json(&body)).await?)?;
    ctx.io.println(&v.str_at(&["Name"]));
    Ok(())
}

#[derive(Debug, Clone, Args)]
#[command(about = "List volumes")]
pub struct LsArgs {
    #[arg(short, long, value_name = "filter", help = "Provide filter values (e.g. \"dangling=true\")")]
    pub filter: Vec<String>,
    #[arg(long, value_name = "string", help = "Format output using a custom template")]
    pub format: Option<String>,
    #[arg(short, long, action = ArgAction::SetTrue, help = "Only display volume names")]
    pub quiet: bool,
}

pub fn volume_context(v: &Value) -> Value {
    let labels_map = v.get("Labels").cloned().unwrap_or(Value::Null);
    let mut labels: Vec<String> = v.entries_at(&["Labels"]).iter().map(|(k, x)| format!("{k}={}", x.display())).collect();
    labels.sort();
    let refs = v.i64_at(&["UsageData", "RefCount"]);
    let size = v.path(&["UsageData", "Size"]).map(|_| v.i64_at(&["UsageData", "Size"]));
    context(vec![
        ("Availability", Value::from("N/A")),
        ("Driver", Value::from(v.str_at(&["Driver"]))),
        ("Group", Value::from("N/A")),
        (
            "Label",
            Value::method(move |args| {
                let k = args.first().map(Value::display).unwrap_or_default();
                Ok(labels_map.get(&k).cloned().unwrap_or(Value::from("")))
            }),
        ),
        ("Labels", Value::from(labels.join(","))),
        ("Links", Value::from(if v.path(&["UsageData"]).is_some() { refs.to_string() } else { "N/A".into() })),
        ("Mountpoint", Value::from(v.str_at(&["Mountpoint"]))),
        ("Name", Value::from(v.str_at(&["Name"]))),
        ("Scope", Value::from(v.str_at(&["Scope"]))),
        (
            "Size",
            Value::from(match size {
                Some(s) if s >= 0 => units::human_size(s as f64),
                _ => "N/A".to_string(),
            }),
        ),
        ("Status", Value::from("N/A")),
    ])
}

pub fn volume_headers() -> Value {
    Value::Map(
        Map::new()
            .with("Name", "VOLUME NAME")
            .with("Driver", "DRIVER")
            .with("Scope", "SCOPE")
            .with("Mountpoint", "MOUNTPOINT")
            .with("Labels", "LABELS")
            .with("Label", format::header_label_method())
            .with("Links", "LINKS")
            .with("Size", "SIZE"),
    )
}

pub async fn ls(ctx: &Ctx, a: LsArgs) -> Result<()> {
    let format = if a.quiet {
        "{{.Name}}".to_string()
    } else {
        a.format.clone().or_else(|| ctx.config.string("volumesFormat").map(str::to_string)).unwrap_or_else(|| "table".into())
    };
    let format = if format == "table" { "table {{.Driver}}\t{{.Name}}".to_string() } else { format };
    let c = ctx.client().await?;
    let mut call = Call::get("/volumes");
    if let Some(f) = filters_json(&a.filter)? {
        call = call.query("filters", f);
    }
    let v = value(&c.bytes(call).await?)?;
    for w in v.list_at(&["Warnings"]) {
        ctx.io.eprintln(&w.display());
    }
    let mut items = v.list_at(&["Volumes"]).to_vec();
    items.sort_by_key(|x| x.str_at(&["Name"]));
    let rows: Vec<Value> = items.iter().map(volume_context).collect();
    ctx.io.print(&format::render_list(&format, &volume_headers(), &rows)?);
    Ok(())
}

#[derive(Debug, Clone, Args)]
#[command(about = "Display detailed information on one or more volumes")]
pub struct InspectArgs {
    #[arg(short, long, value_name = "string", help = "Format output using a custom template")]
    pub format: Option<String>,
    #[arg(required = true, value_name = "VOLUME")]
    pub volumes: Vec<String>,
}

pub async fn inspect(ctx: &Ctx, a: InspectArgs) -> Result<()> {
    super::container::inspect_each(ctx, a.format.as_deref(), &a.volumes, |n| Call::get(format!("/volumes/{n}"))).await
}

#[derive(Debug, Clone, Args)]
#[command(about = "Remove one or more volumes")]
pub struct RmArgs {
    #[arg(short, long, action = ArgAction::SetTrue, help = "Force the removal of one or more volumes")]
    pub force: bool,
    #[arg(required = true, value_name = "VOLUME")]
    pub volumes: Vec<String>,
}

pub async fn rm(ctx: &Ctx, a: RmArgs) -> Result<()> {
    let c = ctx.client().await?;
    for_each(ctx, &a.volumes, |name| {
        let call = Call::delete(format!("/volumes/{name}")).flag("force", a.force);
        async move { c.bytes(call).await.map(|_| Some(name)) }
    })
    .await
}

#[derive(Debug, Clone, Args)]
#[command(about = "Remove unused local volumes")]
pub struct PruneArgs {
    #[arg(short, long, action = ArgAction::SetTrue, help = "Remove all unused volumes, not just anonymous ones")]
    pub all: bool,
    #[arg(long, value_name = "filter", help = "Provide filter values (e.g. \"label=<label>\")")]
    pub filter: Vec<String>,
    #[arg(short, long, action = ArgAction::SetTrue, help = "Do not prompt for confirmation")]
    pub force: bool,
}

pub async fn prune_volumes(ctx: &Ctx, all: bool, filter: &[String]) -> Result<(Vec<String>, u64)> {
    let c = ctx.client().await?;
    let mut filters = filter.to_vec();
    // API 1.42 made prune skip named volumes unless `all=true`.
    if all && !c.version_before("1.42") {
        filters.push("all=true".into());
    }
    let mut call = Call::post("/volumes/prune");
    if let Some(f) = filters_json(&filters)? {
        call = call.query("filters", f);
    }
    let v = value(&c.bytes(call).await?)?;
    Ok((v.list_at(&["VolumesDeleted"]).iter().map(Value::display).collect(), v.i64_at(&["SpaceReclaimed"]).max(0) as u64))
}

pub async fn prune(ctx: &Ctx, a: PruneArgs) -> Result<()> {
    let warning = if a.all {
        "WARNING! This will remove all local volumes not used by at least one container."
    } else {
        "WARNING! This will remove anonymous local volumes not used by at least one container."
    };
    if !super::confirm(ctx, warning, a.force) {
        return Ok(());
    }
    let (names, space) = prune_volumes(ctx, a.all, &a.filter).await?;
    if !names.is_empty() {
        ctx.io.println("Deleted Volumes:");
        for n in &names {
            ctx.io.println(n);
        }
        ctx.io.println("");
    }
    ctx.io.println(&format!("Total reclaimed space: {}", units::human_size(space as f64)));
    Ok(())
}

pub async fn dispatch(ctx: &Ctx, cmd: VolumeCmd) -> Result<()> {
    match cmd {
        VolumeCmd::Create(a) => create(ctx, a).await,
        VolumeCmd::Inspect(a) => inspect(ctx, a).await,
        VolumeCmd::Ls(a) => ls(ctx, a).await,
        VolumeCmd::Prune(a) => prune(ctx, a).await,
        VolumeCmd::Rm(a) => rm(ctx, a).await,
    }
}
