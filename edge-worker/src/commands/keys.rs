//! `jobline keys create|list|revoke`.

use anyhow::bail;
use jobline::Config;

#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Make a key; prints it once (alone on the last line of stdout).
    Create {
        #[arg(long)]
        tenant: String,
        /// Comma-separated: jobs:read, jobs:write, admin.
        #[arg(long, value_delimiter = ',', default_value = "jobs:read,jobs:write")]
        scopes: Vec<String>,
        #[arg(long)]
        name: Option<String>,
    },
    /// List keys (never their secrets).
    List {
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Revoke a key by id; it stops working at once.
    Revoke { id: uuid::Uuid },
}

pub async fn run(config: &Config, cmd: KeysCommand) -> anyhow::Result<()> {
    let store = jobline::connect(config)?;
    match cmd {
        KeysCommand::Create { tenant, scopes, name } => {
            let scopes: Vec<String> = scopes.into_iter().map(|s| s.trim().to_owned()).collect();
            let key = store.create_api_key(&tenant, &scopes, name.as_deref()).await?;
            println!(
                "key id {} for tenant {tenant} with scopes {}",
                key.id,
                scopes.join(",")
            );
            println!("store it now: it is shown once and kept only as a hash");
            println!("{}", key.key);
        }
        KeysCommand::List { tenant } => {
            for k in store.list_api_keys(tenant.as_deref()).await? {
                let state = if k.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                println!(
                    "{}  {:<16} {:<30} {:<8} {}",
                    k.id,
                    k.tenant_id,
                    k.scopes.join(","),
                    state,
                    k.name.unwrap_or_default()
                );
            }
        }
        KeysCommand::Revoke { id } => {
            if !store.revoke_api_key(id).await? {
                bail!("no key {id}");
            }
            println!("revoked {id}");
        }
    }
    Ok(())
}

/// `jobline webhook-secret --tenant T`: prints the tenant's signing secret
/// (alone on stdout), for that tenant's receivers only.
pub fn webhook_secret(config: &Config, tenant: &str) -> anyhow::Result<()> {
    let Some(master) = &config.webhook.secret else {
        anyhow::bail!("JOBLINE_WEBHOOK_SECRET is not set: webhooks are sent unsigned");
    };
    // The secret of the tenant as jobs carry it: no stray spaces.
    let tenant = tenant.trim();
    if tenant.is_empty() {
        anyhow::bail!("--tenant must name a tenant");
    }
    println!(
        "{}",
        jobline::handlers::webhook::tenant_secret(master.as_bytes(), tenant)
    );
    Ok(())
}
