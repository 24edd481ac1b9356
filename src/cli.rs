//! The command line: `latchkey serve | worker | bounces | migrate | demo | config | admin`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::app::{App, AppOptions};
use crate::config::Config;
use crate::crypto::Keys;
use crate::store::Store;
use crate::usecases::sender::{self, SenderError, SenderView};
use crate::usecases::{admin, api_keys};

#[derive(Debug, Parser)]
#[command(
    name = "latchkey",
    version,
    about = "Self-service customer portal with magic-link sign-in"
)]
pub struct Cli {
    /// Directory holding default.toml and {LATCHKEY_ENV}.toml.
    #[arg(
        long,
        env = "LATCHKEY_CONFIG_DIR",
        default_value = "config",
        global = true
    )]
    config_dir: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the web front (and, unless --no-workers or run_workers = false, the mail workers).
    Serve {
        /// Serve the web front only; the workers run elsewhere (`latchkey worker`).
        #[arg(long)]
        no_workers: bool,
    },
    /// Run mail workers only (competing consumers on the queue) and the relay, and the bounce
    /// listener when `bounces.listen` is set.
    Worker,
    /// Run the bounce listener alone (`bounces.listen`): the inbound SMTP server that records
    /// bounces and complaints sent to the emails' VERP addresses.
    Bounces,
    /// Apply database migrations and exit.
    Migrate,
    /// Load the demo storefront (idempotent) and exit.
    Demo,
    /// Print the effective configuration (secrets redacted) and exit.
    Config,
    /// Create storefronts, staff users and API keys.
    Admin {
        #[command(subcommand)]
        command: Box<Admin>,
    },
}

#[derive(Debug, Subcommand)]
enum Admin {
    /// Create or update a storefront (by slug), with its sender settings and DKIM signing.
    /// When updating, what is left out stays as it is.
    Storefront {
        #[arg(long)]
        slug: String,
        /// Its name (required when creating).
        #[arg(long)]
        name: Option<String>,
        /// The sender address of its emails (required when creating).
        #[arg(long)]
        from_email: Option<String>,
        /// The sender name (default: the storefront's name).
        #[arg(long)]
        from_name: Option<String>,
        /// The Reply-To address of its emails.
        #[arg(long)]
        reply_to: Option<String>,
        /// Remove the Reply-To address.
        #[arg(long, conflicts_with = "reply_to")]
        no_reply_to: bool,
        /// Where "Rent a unit" leads (required when creating).
        #[arg(long)]
        rent_url: Option<String>,
        /// A host of its own, serving the portal at `/`.
        #[arg(long)]
        custom_host: Option<String>,
        /// The DKIM signing domain (`d=`): the sender's domain or a parent of it.
        #[arg(long)]
        dkim_domain: Option<String>,
        /// The DKIM selector (`s=`): the DNS record is `{selector}._domainkey.{domain}`.
        #[arg(long)]
        dkim_selector: Option<String>,
        /// A PEM file with the DKIM private key (RSA or Ed25519, PKCS#1 or PKCS#8), stored
        /// sealed with the secret key; the DNS record to publish is printed.
        #[arg(long)]
        dkim_private_key_file: Option<PathBuf>,
        /// Stop signing with DKIM (the stored key is deleted).
        #[arg(long, conflicts_with_all = ["dkim_domain", "dkim_selector", "dkim_private_key_file"])]
        remove_dkim: bool,
        /// The language of its pages and emails for customers who chose none: a folder of
        /// `locales/` (`en`, `fr-CA`). Unchanged when omitted; `en` for a new storefront.
        #[arg(long)]
        language: Option<String>,
    },
    /// List the storefronts.
    Storefronts,
    /// Create a staff user (owner, manager or staff of a storefront, or platform support), or
    /// disable or enable one.
    #[command(args_conflicts_with_subcommands = true)]
    Staff {
        #[command(subcommand)]
        action: Option<StaffAction>,
        #[arg(long, required = true)]
        email: Option<String>,
        #[arg(long, required = true)]
        name: Option<String>,
        /// owner | manager | staff | support
        #[arg(long, required = true)]
        role: Option<String>,
        /// The storefront's slug (not for support).
        #[arg(long)]
        storefront: Option<String>,
    },
    /// Create an API key for a storefront; the key is printed once.
    ApiKey {
        #[arg(long)]
        storefront: String,
        /// What uses it, e.g. "Booking system".
        #[arg(long)]
        name: String,
    },
    /// Revoke an API key.
    RevokeApiKey {
        #[arg(long)]
        storefront: String,
        #[arg(long)]
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
enum StaffAction {
    /// Disable a staff user: no more console links, and their sessions and unused links end.
    Disable {
        #[arg(long)]
        email: String,
    },
    /// Enable a disabled staff user again.
    Enable {
        #[arg(long)]
        email: String,
    },
}

/// Runs the command line; the binary's `main` is just this.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(&cli.config_dir) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("latchkey: {e}");
            return ExitCode::from(2);
        }
    };
    crate::telemetry::init(config.log_format, &config.log_level);
    let result = match cli.command.unwrap_or(Command::Serve { no_workers: false }) {
        Command::Serve { no_workers } => App::run(
            config,
            AppOptions {
                web: true,
                workers: no_workers.then_some(false),
                ..AppOptions::default()
            },
        )
        .map_err(|e| e.to_string()),
        Command::Worker => App::run(
            config,
            AppOptions {
                web: false,
                workers: Some(true),
                ..AppOptions::default()
            },
        )
        .map_err(|e| e.to_string()),
        Command::Bounces => App::run(
            config,
            AppOptions {
                web: false,
                workers: Some(false),
                bounces: Some(true),
                ..AppOptions::default()
            },
        )
        .map_err(|e| e.to_string()),
        Command::Migrate => one_shot(config, |store, config| async move {
            let keys = crate::app::keys(&config).map_err(|e| e.to_string())?;
            let applied = admin::migrate(&store, &keys)
                .await
                .map_err(|e| e.to_string())?;
            if applied.is_empty() {
                println!("The database is up to date.");
            } else {
                println!("Applied: {}", applied.join(", "));
            }
            Ok(())
        }),
        Command::Demo => one_shot(config, |store, config| async move {
            let keys = crate::app::keys(&config).map_err(|e| e.to_string())?;
            admin::migrate(&store, &keys)
                .await
                .map_err(|e| e.to_string())?;
            let demo = admin::load_demo(&store).await.map_err(|e| e.to_string())?;
            println!(
                "Demo storefront `{}` is ready: customers {}.",
                demo.slug,
                demo.customers.join(" and ")
            );
            Ok(())
        }),
        Command::Config => {
            println!("{}", config.describe());
            Ok(())
        }
        Command::Admin { command } => one_shot(config, |store, config| async move {
            let keys = crate::app::keys(&config).map_err(|e| e.to_string())?;
            admin::migrate(&store, &keys)
                .await
                .map_err(|e| e.to_string())?;
            run_admin(&store, &keys, *command).await
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("latchkey: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a short task against the database on a small runtime.
fn one_shot<F, Fut>(config: Config, f: F) -> Result<(), String>
where
    F: FnOnce(Store, Config) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let kind = config.database_kind().map_err(|e| e.to_string())?;
        let store = Store::open(&kind, 2).map_err(|e| e.to_string())?;
        f(store, config).await
    })
}

/// A refused sender setting, named by its option.
fn cli_sender_error(e: SenderError) -> String {
    match e {
        SenderError::Invalid { field, problem } => {
            let flag = match field {
                "from_name" => "--from-name",
                "from_email" => "--from-email",
                "reply_to" => "--reply-to",
                "dkim.domain" => "--dkim-domain",
                "dkim.selector" => "--dkim-selector",
                "dkim.private_key" => "--dkim-private-key-file",
                other => other,
            };
            format!("{flag}: {problem}")
        }
        other => other.to_string(),
    }
}

/// The sender settings, and the DNS record to publish when DKIM is set.
fn print_sender(v: &SenderView) {
    println!("Sender: {} <{}>", v.from_name, v.from_email);
    if let Some(r) = &v.reply_to {
        println!("Reply-To: {r}");
    }
    match &v.dkim {
        None => println!("DKIM: off"),
        Some(d) => {
            println!("DKIM: d={} s={}", d.domain, d.selector);
            if let Some(problem) = &d.problem {
                println!("DKIM is misconfigured: {problem}");
            }
            if let Some(record) = &d.record {
                println!("Publish this DNS TXT record:");
                println!("{} IN TXT \"{}\"", record.name, record.value);
            }
        }
    }
}

async fn storefront_id(store: &Store, slug: &str) -> Result<i64, String> {
    admin::storefront_by_slug(store, slug)
        .await
        .map_err(|e| e.to_string())?
        .map(|s| s.id)
        .ok_or_else(|| format!("no storefront `{slug}`"))
}

async fn run_admin(store: &Store, keys: &Keys, command: Admin) -> Result<(), String> {
    use crate::domain::dkim::{DkimKey, DnsName};
    use crate::domain::{EmailAddress, StorefrontSlug};
    use crate::store::{NewStorefront, Role, Storefront};
    use crate::usecases::sender::{DkimChange, SenderChange};
    match command {
        Admin::Storefront {
            slug,
            name,
            from_email,
            from_name,
            reply_to,
            no_reply_to,
            rent_url,
            custom_host,
            dkim_domain,
            dkim_selector,
            dkim_private_key_file,
            remove_dkim,
            language,
        } => {
            let catalog = crate::i18n::Catalog::load().map_err(|e| e.to_string())?;
            let language = match language {
                Some(tag) => match catalog.get(&tag) {
                    Some(l) => Some(l.tag().to_string()),
                    None => {
                        let known: Vec<&str> = catalog.tags().collect();
                        return Err(format!(
                            "--language: `{tag}` is not one of the languages shipped ({})",
                            known.join(", ")
                        ));
                    }
                },
                None => None,
            };
            let slug = StorefrontSlug::parse(&slug).map_err(|e| format!("--slug: {e}"))?;
            let existing = admin::storefront_by_slug(store, slug.as_str())
                .await
                .map_err(|e| e.to_string())?;
            let required = |flag: &str| format!("{flag}: required when creating a storefront");
            let name = match (name, &existing) {
                (Some(n), _) => n,
                (None, Some(sf)) => sf.name.clone(),
                (None, None) => return Err(required("--name")),
            };
            if name.trim().is_empty() || name.chars().any(char::is_control) {
                return Err("--name: must be a name on one line".into());
            }
            let from = match (from_email, &existing) {
                (Some(e), _) => {
                    Some(EmailAddress::parse(&e).map_err(|e| format!("--from-email: {e}"))?)
                }
                (None, Some(_)) => None,
                (None, None) => return Err(required("--from-email")),
            };
            let rent_url = match (rent_url, &existing) {
                (Some(u), _) => {
                    let rent = url::Url::parse(&u).map_err(|e| format!("--rent-url: {e}"))?;
                    if !matches!(rent.scheme(), "http" | "https") {
                        return Err("--rent-url: must be an http(s) URL".into());
                    }
                    rent.to_string()
                }
                (None, Some(sf)) => sf.rent_url.clone(),
                (None, None) => return Err(required("--rent-url")),
            };
            let reply_to = match (reply_to, no_reply_to) {
                (Some(r), _) => Some(Some(
                    EmailAddress::parse(&r).map_err(|e| format!("--reply-to: {e}"))?,
                )),
                (None, true) => Some(None),
                (None, false) => None,
            };
            let dns = |flag: &str, v: Option<String>| {
                v.map(|v| DnsName::parse(&v).map_err(|e| format!("{flag}: {e}")))
                    .transpose()
            };
            let domain = dns("--dkim-domain", dkim_domain)?;
            let selector = dns("--dkim-selector", dkim_selector)?;
            let key = match dkim_private_key_file {
                Some(path) => {
                    let text = std::fs::read_to_string(&path).map_err(|e| {
                        format!(
                            "--dkim-private-key-file: cannot read {}: {e}",
                            path.display()
                        )
                    })?;
                    Some(
                        DkimKey::parse(&text)
                            .map_err(|e| format!("--dkim-private-key-file: {e}"))?,
                    )
                }
                None => None,
            };
            let dkim = match (remove_dkim, &domain, &selector, &key) {
                (true, ..) => DkimChange::Remove,
                (false, None, None, None) => DkimChange::Keep,
                _ => DkimChange::Set {
                    domain,
                    selector,
                    key,
                },
            };
            let change = SenderChange {
                // The sender name follows a new storefront's name unless given.
                from_name: from_name.or_else(|| existing.is_none().then(|| name.clone())),
                from_email: from.clone(),
                reply_to,
                dkim,
            };
            // The sender settings are checked before anything is written.
            let current = existing.clone().unwrap_or_else(|| Storefront {
                id: 0,
                slug: slug.to_string(),
                name: name.clone(),
                from_name: name.clone(),
                from_email: from.clone().expect("required when creating"),
                reply_to: None,
                rent_url: rent_url.clone(),
                custom_host: None,
                acss_debit: false,
                dkim: None,
                language: "en".into(),
            });
            sender::check(keys, &current, &change).map_err(cli_sender_error)?;
            let id = admin::put_storefront(
                store,
                &NewStorefront {
                    slug: slug.to_string(),
                    from_name: existing
                        .as_ref()
                        .map(|sf| sf.from_name.clone())
                        .unwrap_or_else(|| name.clone()),
                    name,
                    from_email: from
                        .clone()
                        .or_else(|| existing.as_ref().map(|sf| sf.from_email.clone()))
                        .expect("required when creating"),
                    rent_url,
                    custom_host: custom_host
                        .map(|h| h.to_ascii_lowercase())
                        .or_else(|| existing.as_ref().and_then(|sf| sf.custom_host.clone())),
                },
            )
            .await
            .map_err(|e| e.to_string())?;
            if let Some(tag) = &language {
                admin::set_storefront_language(store, id, tag)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            let sf = admin::storefront_by_slug(store, slug.as_str())
                .await
                .map_err(|e| e.to_string())?
                .ok_or("the storefront was not written")?;
            let sf = if change.is_empty() {
                sf
            } else {
                sender::change(
                    store,
                    keys,
                    &sf,
                    &change,
                    ("cli_sender_changed", serde_json::json!({})),
                    chrono::Utc::now(),
                )
                .await
                .map_err(cli_sender_error)?
            };
            println!("Storefront `{slug}` (#{id}) is ready: its portal is at /s/{slug}/.");
            print_sender(&sender::view(keys, &sf));
        }
        Admin::Storefronts => {
            for sf in admin::storefronts(store).await.map_err(|e| e.to_string())? {
                println!(
                    "{}\t{}\t{}\t{}",
                    sf.slug, sf.name, sf.from_email, sf.language
                );
            }
        }
        Admin::Staff {
            action: Some(action),
            ..
        } => {
            let (email, disable) = match action {
                StaffAction::Disable { email } => (email, true),
                StaffAction::Enable { email } => (email, false),
            };
            let email = EmailAddress::parse(&email).map_err(|e| format!("--email: {e}"))?;
            match admin::set_staff_disabled(store, &email, disable)
                .await
                .map_err(|e| e.to_string())?
            {
                Some(staff) if disable => println!(
                    "Staff user #{} <{}> is disabled: their console sessions and links have ended.",
                    staff.id, staff.email
                ),
                Some(staff) => println!(
                    "Staff user #{} <{}> can sign in at /console again.",
                    staff.id, staff.email
                ),
                None if disable => return Err(format!("no enabled staff user {email}")),
                None => return Err(format!("no disabled staff user {email}")),
            }
        }
        Admin::Staff {
            action: None,
            email: Some(email),
            name: Some(name),
            role: Some(role),
            storefront,
        } => {
            let email = EmailAddress::parse(&email).map_err(|e| format!("--email: {e}"))?;
            let role = Role::parse(&role).ok_or("--role: owner, manager, staff or support")?;
            let sf = match (role, storefront) {
                (Role::Support, None) => None,
                (Role::Support, Some(_)) => {
                    return Err("--storefront: platform support belongs to no storefront".into());
                }
                (_, Some(slug)) => Some(storefront_id(store, &slug).await?),
                (_, None) => return Err("--storefront: required for this role".into()),
            };
            let staff = admin::create_staff(store, sf, &email, name.trim(), role)
                .await
                .map_err(|e| match e {
                    crate::store::DbError::Unique(_) => format!("{email} is already a staff user"),
                    other => other.to_string(),
                })?;
            println!(
                "Staff user #{} {} <{}> ({}) can sign in at /console.",
                staff.id,
                staff.full_name,
                staff.email,
                staff.role.as_str()
            );
        }
        Admin::Staff { .. } => return Err("--email, --name and --role are required".into()),
        Admin::ApiKey { storefront, name } => {
            let sf = storefront_id(store, &storefront).await?;
            let (id, key) = api_keys::create(store, sf, name.trim())
                .await
                .map_err(|e| e.to_string())?;
            println!("API key #{id} for `{storefront}` (shown once, keep it safe):");
            println!("{key}");
        }
        Admin::RevokeApiKey { storefront, id } => {
            let sf = storefront_id(store, &storefront).await?;
            if api_keys::revoke(store, sf, id)
                .await
                .map_err(|e| e.to_string())?
            {
                println!("API key #{id} is revoked.");
            } else {
                return Err(format!("no live API key #{id} for `{storefront}`"));
            }
        }
    }
    Ok(())
}
