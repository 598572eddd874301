//! `network create|ls|inspect|rm|connect|disconnect|prune`.

use clap::{ArgAction, Args, Subcommand};

use super::{filters_json, for_each, value};
use crate::client::Call;
use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::format::{self, Map, Value, template::context, truncate_id};
use crate::opts::parse;

#[derive(Debug, Clone, Subcommand)]
pub enum NetworkCmd {
    /// Connect a container to a network
    Connect(ConnectArgs),
    /// Create a network
    Create(CreateArgs),
    /// Disconnect a container from a network
    Disconnect(DisconnectArgs),
    /// Display detailed information on one or more networks
    Inspect(InspectArgs),
    /// List networks
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Remove all unused networks
    Prune(PruneArgs),
    /// Remove one or more networks
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
}

#[derive(Debug, Clone, Args)]
#[command(about = "Create a network")]
pub struct CreateArgs {
    #[arg(long, action = ArgAction::SetTrue, help = "Enable manual container attachment")]
    pub attachable: bool,
    #[arg(long = "aux-address", value_name = "map", help = "Auxiliary IPv4 or IPv6 addresses used by Network driver")]
    pub aux_address: Vec<String>,
    #[arg(short, long, value_name = "string", default_value = "bridge", help = "Driver to manage the Network")]
    pub driver: String,
    #[arg(long, value_name = "strings", help = "IPv4 or IPv6 Gateway for the master subnet")]
    pub gateway: Vec<String>,
    #[arg(long = "config-from", value_name = "string", help = "The network from which to copy the configuration")]
    pub config_from: Option<String>,
    #[arg(long = "config-only", action = ArgAction::SetTrue, help = "Create a configuration only network")]
    pub config_only: bool,
    #[arg(long, action = ArgAction::SetTrue, help = "Create swarm routing-mesh network")]
    pub ingress: bool,
    #[arg(long, action = ArgAction::SetTrue, help = "Restrict external access to the network")]
    pub internal: bool,
    #[arg(long = "ip-range", value_name = "strings", help = "Allocate container ip from a sub-range")]
    pub ip_range: Vec<String>,
    #[arg(long = "ipam-driver", value_name = "string", default_value = "default", help = "IP Address Management Driver")]
    pub ipam_driver: String,
    #[arg(long = "ipam-opt", value_name = "map", help = "Set IPAM driver specific options")]
    pub ipam_opt: Vec<String>,
    #[arg(long, action = ArgAction::SetTrue, help = "Enable or disable IPv6 networking")]
    pub ipv6: bool,
    #[arg(long, value_name = "list", help = "Set metadata on a network")]
    pub label: Vec<String>,
    #[arg(short, long, value_name = "map", help = "Set driver specific options")]
    pub opt: Vec<String>,
    #[arg(long, value_name = "string", default_value = "", hide_default_value = true, help = "Control the network's scope")]
    pub scope: String,
    #[arg(long, value_name = "strings", help = "Subnet in CIDR format that represents a network segment")]
    pub subnet: Vec<String>,
    #[arg(value_name = "NETWORK")]
    pub name: String,
}

/// docker's `consolidateIpam`: pairs each gateway and ip-range with the subnet that
/// contains it.
fn ipam_configs(a: &CreateArgs) -> Result<Vec<berth_types::network::IpamPoolConfig>> {
    if a.subnet.is_empty() && (!a.gateway.is_empty() || !a.ip_range.is_empty() || !a.aux_address.is_empty()) {
        return Err(Error::msg("every ip-range or gateway must have a corresponding subnet"));
    }
    let mut pools: Vec<berth_types::network::IpamPoolConfig> = Vec::new();
    for s in &a.subnet {
        let net: ipnet::IpNet = s.parse().map_err(|_| Error::msg(format!("invalid CIDR address: {s}")))?;
        if pools.iter().any(|p| p.subnet.parse::<ipnet::IpNet>().is_ok_and(|o| o.contains(&net.network()) || net.contains(&o.network()))) {
            return Err(Error::msg("multiple overlapping subnet configuration is not supported"));
        }
        pools.push(berth_types::network::IpamPoolConfig { subnet: s.clone(), ..Default::default() });
    }
    let find = |ip: &str, pools: &mut Vec<berth_types::network::IpamPoolConfig>| -> Result<usize> {
        let addr: std::net::IpAddr = ip.split('/').next().unwrap_or(ip).parse().map_err(|_| Error::msg(format!("invalid address: {ip}")))?;
        pools
            .iter()
            .position(|p| p.subnet.parse::<ipnet::IpNet>().is_ok_and(|n| n.contains(&addr)))
            .ok_or_else(|| Error::msg(format!("no matching subnet for {ip}")))
    };
    for r in &a.ip_range {
        let i = find(r, &mut pools)?;
        if !pools[i].ip_range.is_empty() {
            return Err(Error::msg(format!("cannot configure multiple ranges ({r}, {}) on the same subnet ({})", pools[i].ip_range, pools[i].subnet)));
        }
        pools[i].ip_range = r.clone();
    }
    for g in &a.gateway {
        let i = find(g, &mut pools)?;
        if !pools[i].gateway.is_empty() {
            return Err(Error::msg(format!("cannot configure multiple gateways ({g}, {}) for the same subnet ({})", pools[i].gateway, pools[i].subnet)));
        }
        pools[i].gateway = g.clone();
    }
    for x in &a.aux_address {
        let (k, ip) = x.split_once('=').ok_or_else(|| Error::msg(format!("invalid auxiliary address: {x}")))?;
        let i = find(ip, &mut pools)?;
        pools[i].auxiliary_addresses.get_or_insert_with(Default::default).insert(k.to_string(), ip.to_string());
    }
    Ok(pools)
}

pub async fn create(ctx: &Ctx, a: CreateArgs) -> Result<()> {
    let pools = ipam_configs(&a)?;
    let body = serde_json::json!({
        "Name": a.name,
        "Driver": a.driver,
        "Scope": a.scope,
        "EnableIPv6": a.ipv6,
        "IPAM": {
            "Driver": a.ipam_driver,
            "Config": pools,
            "Options": parse::kv_map(&a.ipam_opt),
        },
        "Internal": a.internal,
        "Attachable": a.attachable,
        "Ingress": a.ingress,
        "ConfigOnly": a.config_only,
        "ConfigFrom": a.config_from.as_ref().map(|n| serde_json::json!({"Network": n})),
        "Options": parse::kv_map(&a.opt),
        "Labels": parse::kv_map(&a.label),
    });
    let c = ctx.client().await?;
    let v = value(&c.bytes(Call::post("/networks/create").json(&body)).await?)?;
    let w = v.str_at(&["Warning"]);
    if !w.is_empty() {
        ctx.io.eprintln(&format!("WARNING: {w}"));
    }
    ctx.io.println(&v.str_at(&["Id"]));
    Ok(())
}

#[derive(Debug, Clone, Args)]
#[command(about = "List networks")]
pub struct LsArgs {
    #[arg(short, long, value_name = "filter", help = "Provide filter values (e.g. \"driver=bridge\")")]
    pub filter: Vec<String>,
    #[arg(long, value_name = "string", help = "Format output using a custom template")]
    pub format: Option<String>,
    #[arg(long = "no-trunc", action = ArgAction::SetTrue, help = "Do not truncate the output")]
    pub no_trunc: bool,
    #[arg(short, long, action = ArgAction::SetTrue, help = "Only display network IDs")]
    pub quiet: bool,
}

pub fn network_context(n: &Value, trunc: bool) -> Value {
    let id = n.str_at(&["Id"]);
    let labels_map = n.get("Labels").cloned().unwrap_or(Value::Null);
    let mut labels: Vec<String> = n.entries_at(&["Labels"]).iter().map(|(k, v)| format!("{k}={}", v.display())).collect();
    labels.sort();
    let created = n.str_at(&["Created"]);
    context(vec![
        ("CreatedAt", Value::from(super::rfc3339_unix(&created).map(super::go_time_string).unwrap_or(created))),
        ("Driver", Value::from(n.str_at(&["Driver"]))),
        ("ID", Value::from(if trunc { truncate_id(&id) } else { id })),
        ("IPv4", Value::from(if n.path(&["EnableIPv4"]).is_none() || n.bool_at(&["EnableIPv4"]) { "true" } else { "false" })),
        ("IPv6", Value::from(n.bool_at(&["EnableIPv6"]).to_string())),
        ("Internal", Value::from(n.bool_at(&["Internal"]).to_string())),
        (
            "Label",
            Value::method(move |args| {
                let k = args.first().map(Value::display).unwrap_or_default();
                Ok(labels_map.get(&k).cloned().unwrap_or(Value::from("")))
            }),
        ),
        ("Labels", Value::from(labels.join(","))),
        ("Name", Value::from(n.str_at(&["Name"]))),
        ("Scope", Value::from(n.str_at(&["Scope"]))),
    ])
}

pub async fn ls(ctx: &Ctx, a: LsArgs) -> Result<()> {
    let format = if a.quiet {
        "{{.ID}}".to_string()
    } else {
        a.format.clone().or_else(|| ctx.config.string("networksFormat").map(str::to_string)).unwrap_or_else(|| "table".into())
    };
    let format = if format == "table" { "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}".to_string() } else { format };
    let c = ctx.client().await?;
    let mut call = Call::get("/networks");
    if let Some(f) = filters_json(&a.filter)? {
        call = call.query("filters", f);
    }
    let list = value(&c.bytes(call).await?)?;
    let mut items: Vec<Value> = list.list_at(&[]).to_vec();
    items.sort_by_key(|n| n.str_at(&["Name"]));
    let rows: Vec<Value> = items.iter().map(|n| network_context(n, !a.no_trunc)).collect();
    let headers = Value::Map(
        Map::new()
            .with("ID", "NETWORK ID")
            .with("Name", "NAME")
            .with("Driver", "DRIVER")
            .with("Scope", "SCOPE")
            .with("IPv4", "IPV4")
            .with("IPv6", "IPV6")
            .with("Internal", "INTERNAL")
            .with("Labels", "LABELS")
            .with("Label", format::header_label_method())
            .with("CreatedAt", "CREATED"),
    );
    ctx.io.print(&format::render_list(&format, &headers, &rows)?);
    Ok(())
}

#[derive(Debug, Clone, Args)]
#[command(about = "Display detailed information on one or more networks")]
pub struct InspectArgs {
    #[arg(short, long, value_name = "string", help = "Format output using a custom template")]
    pub format: Option<String>,
    #[arg(short, long, action = ArgAction::SetTrue, help = "Verbose output for diagnostics")]
    pub verbose: bool,
    #[arg(required = true, value_name = "NETWORK")]
    pub networks: Vec<String>,
}

pub async fn inspect(ctx: &Ctx, a: InspectArgs) -> Result<()> {
    let verbose = a.verbose;
    super::container::inspect_each(ctx, a.format.as_deref(), &a.networks, |n| Call::get(format!("/networks/{n}")).flag("verbose", verbose)).await
}

#[derive(Debug, Clone, Args)]
#[command(about = "Remove one or more networks")]
pub struct RmArgs {
    #[arg(short, long, action = ArgAction::SetTrue, help = "Do not error if the network does not exist")]
    pub force: bool,
    #[arg(required = true, value_name = "NETWORK")]
    pub networks: Vec<String>,
}

pub async fn rm(ctx: &Ctx, a: RmArgs) -> Result<()> {
    let c = ctx.client().await?;
    let force = a.force;
    for_each(ctx, &a.networks, |name| async move {
        // The docker CLI looks the network up first (the trace shows it), so that
        // a name matching several networks fails clearly.
        match c.bytes(Call::get(format!("/networks/{name}"))).await {
            Err(e) if e.is_not_found() && force => return Ok(None),
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        c.bytes(Call::delete(format!("/networks/{name}"))).await.map(|_| Some(name))
    })
    .await
}

#[derive(Debug, Clone, Args)]
#[command(about = "Connect a container to a network")]
pub struct ConnectArgs {
    #[arg(long, value_name = "strings", help = "Add network-scoped alias for the container")]
    pub alias: Vec<String>,
    #[arg(long = "driver-opt", value_name = "strings", help = "driver options for the network")]
    pub driver_opt: Vec<String>,
    #[arg(long, value_name = "string", help = "IPv4 address (e.g., \"172.30.100.104\")")]
    pub ip: Option<String>,
    #[arg(long, value_name = "string", help = "IPv6 address (e.g., \"2001:db8::33\")")]
    pub ip6: Option<String>,
    #[arg(long, value_name = "list", help = "Add link to another container")]
    pub link: Vec<String>,
    #[arg(long = "link-local-ip", value_name = "strings", help = "Add a link-local address for the container")]
    pub link_local_ip: Vec<String>,
    #[arg(value_name = "NETWORK")]
    pub network: String,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

pub async fn connect(ctx: &Ctx, a: ConnectArgs) -> Result<()> {
    let ipam = if a.ip.is_some() || a.ip6.is_some() || !a.link_local_ip.is_empty() {
        serde_json::json!({"IPv4Address": a.ip.clone().unwrap_or_default(), "IPv6Address": a.ip6.clone().unwrap_or_default(), "LinkLocalIPs": a.link_local_ip})
    } else {
        serde_json::Value::Null
    };
    let body = serde_json::json!({
        "Container": a.container,
        "EndpointConfig": {
            "IPAMConfig": ipam,
            "Links": if a.link.is_empty() { serde_json::Value::Null } else { serde_json::json!(a.link) },
            "Aliases": if a.alias.is_empty() { serde_json::Value::Null } else { serde_json::json!(a.alias) },
            "DriverOpts": if a.driver_opt.is_empty() { serde_json::Value::Null } else { serde_json::json!(parse::kv_map(&a.driver_opt)) },
        }
    });
    let c = ctx.client().await?;
    c.bytes(Call::post(format!("/networks/{}/connect", a.network)).json(&body)).await?;
    Ok(())
}

#[derive(Debug, Clone, Args)]
#[command(about = "Disconnect a container from a network")]
pub struct DisconnectArgs {
    #[arg(short, long, action = ArgAction::SetTrue, help = "Force the container to disconnect from a network")]
    pub force: bool,
    #[arg(value_name = "NETWORK")]
    pub network: String,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

pub async fn disconnect(ctx: &Ctx, a: DisconnectArgs) -> Result<()> {
    let c = ctx.client().await?;
    let body = serde_json::json!({"Container": a.container, "Force": a.force});
    c.bytes(Call::post(format!("/networks/{}/disconnect", a.network)).json(&body)).await?;
    Ok(())
}

#[derive(Debug, Clone, Args)]
#[command(about = "Remove all unused networks")]
pub struct PruneArgs {
    #[arg(long, value_name = "filter", help = "Provide filter values (e.g. \"until=<timestamp>\")")]
    pub filter: Vec<String>,
    #[arg(short, long, action = ArgAction::SetTrue, help = "Do not prompt for confirmation")]
    pub force: bool,
}

pub async fn prune_networks(ctx: &Ctx, filter: &[String]) -> Result<Vec<String>> {
    let c = ctx.client().await?;
    let mut call = Call::post("/networks/prune");
    if let Some(f) = filters_json(filter)? {
        call = call.query("filters", f);
    }
    let v = value(&c.bytes(call).await?)?;
    Ok(v.list_at(&["NetworksDeleted"]).iter().map(Value::display).collect())
}

pub async fn prune(ctx: &Ctx, a: PruneArgs) -> Result<()> {
    if !super::confirm(ctx, "WARNING! This will remove all custom networks not used by at least one container.", a.force) {
        return Ok(());
    }
    let names = prune_networks(ctx, &a.filter).await?;
    if !names.is_empty() {
        ctx.io.println("Deleted Networks:");
        for n in names {
            ctx.io.println(&n);
        }
    }
    Ok(())
}

pub async fn dispatch(ctx: &Ctx, cmd: NetworkCmd) -> Result<()> {
    match cmd {
        NetworkCmd::Connect(a) => connect(ctx, a).await,
        NetworkCmd::Create(a) => create(ctx, a).await,
        NetworkCmd::Disconnect(a) => disconnect(ctx, a).await,
        NetworkCmd::Inspect(a) => inspect(ctx, a).await,
        NetworkCmd::Ls(a) => ls(ctx, a).await,
        NetworkCmd::Prune(a) => prune(ctx, a).await,
        NetworkCmd::Rm(a) => rm(ctx, a).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: CreateArgs,
    }

    #[test]
    fn ipam_pairs_gateways_with_subnets() {
        let t = T::parse_from(["x", "--subnet", "10.9.0.0/24", "--subnet", "10.10.0.0/16", "--gateway", "10.10.0.1", "--ip-range", "10.9.0.128/25", "n"]);
        let pools = ipam_configs(&t.a).unwrap();
        assert_eq!(pools[0].ip_range, "10.9.0.128/25");
        assert_eq!(pools[1].gateway, "10.10.0.1");
        let t = T::parse_from(["x", "--subnet", "10.9.0.0/24", "--gateway", "10.8.0.1", "n"]);
        assert!(ipam_configs(&t.a).is_err());
        let t = T::parse_from(["x", "--gateway", "10.8.0.1", "n"]);
        assert!(ipam_configs(&t.a).is_err());
        let t = T::parse_from(["x", "--subnet", "10.9.0.0/16", "--subnet", "10.9.1.0/24", "n"]);
        assert!(ipam_configs(&t.a).is_err());
    }
}
