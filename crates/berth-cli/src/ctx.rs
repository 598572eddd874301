//! What every command gets: the streams, the environment, the config file, and the
//! daemon client (connected and version-negotiated on first use).

use std::path::PathBuf;

use tokio::sync::OnceCell;

use crate::client::Client;
use crate::client::tls::TlsOptions;
use crate::config::ConfigFile;
use crate::error::Result;
use crate::io::Streams;
use crate::opts::parse::Env;

pub struct Ctx {
    pub io: Streams,
    pub env: Env,
    pub config: ConfigFile,
    pub host: String,
    pub tls: Option<TlsOptions>,
    pub cwd: PathBuf,
    /// `--context`, when given.
    pub context_flag: Option<String>,
    client: OnceCell<Client>,
}

impl Ctx {
    pub fn new(io: Streams, env: Env, config: ConfigFile, host: String, tls: Option<TlsOptions>) -> Ctx {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        Ctx { io, env, config, host, tls, cwd, context_flag: None, client: OnceCell::new() }
    }

    /// The client, after `/_ping` has chosen the API version.
    pub async fn client(&self) -> Result<&Client> {
        self.client
            .get_or_try_init(|| async {
                let mut c = Client::new(&self.host, self.tls.as_ref())?;
                c.negotiate().await?;
                Ok(c)
            })
            .await
    }
}
