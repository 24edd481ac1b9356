//! Loading, layering and validating the configuration.

use super::*;

#[allow(clippy::result_large_err)]
/// Loads with the given environment variables set, under figment's `Jail`, which
/// serialises environment changes between tests and restores them afterwards.
fn load_env(
    dir: &Path,
    env_name: Option<&str>,
    env: &[(&str, &str)],
) -> Result<Config, ConfigError> {
    let mut out = None;
    figment::Jail::expect_with(|jail| {
        for (k, v) in env {
            jail.set_env(k, v);
        }
        out = Some(Config::load_from(dir, env_name, Env::prefixed("LATCHKEY_")));
        Ok(())
    });
    out.expect("jail ran")
}

fn load(env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    load_env(dir.path(), None, env)
}

#[test]
fn defaults_are_the_embedded_setup() {
    let c = Config::defaults();
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.ops_listen.to_string(), "127.0.0.1:9090");
    assert_eq!(c.shutdown_grace(), Duration::from_secs(30));
    assert_eq!(
        c.database_kind().unwrap(),
        DatabaseKind::Sqlite("./data/latchkey.db".into())
    );
    assert_eq!(c.queue_kind().unwrap(), QueueKind::Local);
    assert_eq!(
        c.mail_kind().unwrap(),
        MailKind::Outbox("./data/outbox".into())
    );
    assert_eq!(c.sign_in.link_ttl_minutes, 60);
    assert_eq!(c.sign_in.session_hours, 24);
    assert_eq!(c.retry_delays().len(), 5);
    assert!(!c.stripe_enabled());
}

#[test]
fn environment_overrides_files() {
    let c = load(&[
        ("LATCHKEY_LISTEN", "0.0.0.0:9000"),
        ("LATCHKEY_MAIL__CONCURRENCY", "64"),
        (
            "LATCHKEY_QUEUE_URL",
            "amqp://guest:guest@127.0.0.1:5672/%2f",
        ),
        (
            "LATCHKEY_MAIL_URL",
            "smtp://u:p%40ss@mail.example.com:2525?tls=none",
        ),
    ])
    .unwrap();
    assert_eq!(c.listen.port(), 9000);
    assert_eq!(c.mail.concurrency, 64);
    assert!(matches!(c.queue_kind().unwrap(), QueueKind::Amqp(_)));
    let MailKind::Smtp(smtp) = c.mail_kind().unwrap() else {
        panic!()
    };
    assert_eq!(smtp.host, "mail.example.com");
    assert_eq!(smtp.port, 2525);
    assert_eq!(smtp.tls, SmtpTls::None);
    assert_eq!(smtp.password.unwrap().expose(), "p@ss");
    assert!(!format!("{:?}", c.mail_kind().unwrap()).contains("p@ss"));
}

#[test]
fn a_bad_setting_names_its_key() {
    let cases = [
        (("LATCHKEY_LISTEN", "nowhere"), "listen"),
        (("LATCHKEY_PUBLIC_URL", "ftp://x"), "public_url"),
        (("LATCHKEY_DATABASE_URL", "mysql://x"), "database_url"),
        (("LATCHKEY_QUEUE_URL", "redis://x"), "queue_url"),
        (("LATCHKEY_MAIL_URL", "smtp://x?tls=maybe"), "mail_url"),
        (("LATCHKEY_MAIL__CONCURRENCY", "lots"), "mail.concurrency"),
        (("LATCHKEY_MAIL__CONCURRENCY", "0"), "mail.concurrency"),
        (
            ("LATCHKEY_SIGN_IN__LINK_TTL_MINUTES", "0"),
            "sign_in.link_ttl_minutes",
        ),
        (
            ("LATCHKEY_DATABASE_URL", "postgres://localhost/x"),
            "secret_key",
        ),
        (("LATCHKEY_SECRET_KEY", "short"), "secret_key"),
        (("LATCHKEY_LOG_FORMAT", "xml"), "log_format"),
        (("LATCHKEY_OPS_LISTEN", "127.0.0.1:8080"), "ops_listen"),
        (("LATCHKEY_MAX_CONNECTIONS", "0"), "max_connections"),
    ];
    for ((k, v), key) in cases {
        let err = load(&[(k, v)]).unwrap_err();
        assert_eq!(err.key, key, "{k}={v}: {err}");
        let line = err.to_string();
        assert!(!line.contains('\n'), "one line: {line}");
        assert!(line.starts_with("configuration error: "), "{line}");
    }
}

#[test]
fn describe_hides_passwords() {
    let mut c = Config::defaults();
    c.database_url = "postgres://latchkey:hunter2@db/latchkey".into();
    c.queue_url = "amqp://guest:s3cret@rabbit:5672/%2f".into();
    c.mail_url = "smtp://apikey:topsecret@smtp.example.com:587".into();
    c.secret_key = Some(Secret::new(
        "a-very-long-secret-key-of-32-chars-or-more".into(),
    ));
    let shown = c.describe();
    for secret in ["hunter2", "s3cret", "topsecret", "a-very-long-secret"] {
        assert!(!shown.contains(secret), "{shown}");
    }
    assert!(shown.contains("postgres://latchkey:***@db/latchkey"));
}

#[test]
fn test_variables_are_not_settings() {
    let c = load(&[("LATCHKEY_TEST_DATABASE_URL", "postgres://x@y/z")]).unwrap();
    assert_eq!(c.database_url.expose(), "sqlite://./data/latchkey.db");
}

#[test]
fn debug_output_hides_every_password_and_secret() {
    let mut c = Config::defaults();
    c.database_url = "postgres://latchkey:hunter2@db/latchkey?sslmode=require".into();
    c.queue_url = "amqps://guest:s3cret@rabbit:5671/%2f".into();
    c.mail_url = "smtps://apikey:topsecret@smtp.example.com".into();
    c.stripe_api_base = Some("https://user:stripepw@stripe.internal".into());
    c.stripe_secret_key = Some(Secret::new("sk_live_abcdef".into()));
    c.stripe_webhook_secret = Some(Secret::new("whsec_abcdef".into()));
    let debug = format!("{c:?} {:?} {:?}", c.database_kind(), c.mail_kind());
    for secret in [
        "hunter2",
        "s3cret",
        "topsecret",
        "stripepw",
        "sk_live",
        "whsec_",
    ] {
        assert!(!debug.contains(secret), "{secret} in {debug}");
    }
}

#[test]
fn the_development_secret_key_needs_the_development_setting_with_postgres() {
    let compose_key = "change-me-development-only-0123456789abcdef";
    let pg = [
        ("LATCHKEY_DATABASE_URL", "postgres://latchkey@db/latchkey"),
        ("LATCHKEY_SECRET_KEY", compose_key),
    ];
    let err = load(&pg).unwrap_err();
    assert_eq!(err.key, "secret_key");
    assert!(err.message.contains("development"), "{err}");
    let mut dev = pg.to_vec();
    dev.push(("LATCHKEY_DEVELOPMENT", "true"));
    assert!(load(&dev).is_ok());
    // The embedded default (SQLite) is a developer's machine already.
    assert!(load(&[("LATCHKEY_SECRET_KEY", compose_key)]).is_ok());
    // A real key is fine.
    let real = [
        ("LATCHKEY_DATABASE_URL", "postgres://latchkey@db/latchkey"),
        (
            "LATCHKEY_SECRET_KEY",
            "Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5",
        ),
    ];
    assert!(load(&real).is_ok());
}

#[test]
fn postgres_tls_options_are_checked_at_start() {
    let ok = load(&[
        (
            "LATCHKEY_DATABASE_URL",
            "postgres://u@db/x?sslmode=verify-full",
        ),
        (
            "LATCHKEY_SECRET_KEY",
            "Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5",
        ),
    ]);
    assert!(ok.is_ok(), "{ok:?}");
    let err = load(&[
        ("LATCHKEY_DATABASE_URL", "postgres://u@db/x?sslmode=often"),
        (
            "LATCHKEY_SECRET_KEY",
            "Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5",
        ),
    ])
    .unwrap_err();
    assert_eq!(err.key, "database_url");
}

#[test]
fn unknown_keys_in_a_file_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("staging.toml"), "listn = \"0.0.0.0:1\"\n").unwrap();
    let err = load_env(dir.path(), Some("staging"), &[]).unwrap_err();
    assert!(err.to_string().contains("listn"), "{err}");
    let err = load_env(dir.path(), Some("prod"), &[]).unwrap_err();
    assert_eq!(err.key, "LATCHKEY_ENV");
}

#[test]
fn one_amqp_url_is_one_node() {
    let c = load(&[(
        "LATCHKEY_QUEUE_URL",
        "amqp://guest:guest@127.0.0.1:5672/%2f",
    )])
    .unwrap();
    assert_eq!(
        c.queue_kind().unwrap(),
        QueueKind::Amqp(vec!["amqp://guest:guest@127.0.0.1:5672/%2f".into()])
    );
}

#[test]
fn the_queue_url_may_list_the_nodes_of_a_cluster() {
    let c = load(&[(
        "LATCHKEY_QUEUE_URL",
        "amqp://lk:pw@rabbit1:5672/%2f, amqp://lk:pw@rabbit2:5672/%2f,amqps://lk:pw@rabbit3:5671/%2f",
    )])
    .unwrap();
    let QueueKind::Amqp(nodes) = c.queue_kind().unwrap() else {
        panic!("not AMQP")
    };
    let urls: Vec<&str> = nodes.iter().map(|n| n.expose()).collect();
    assert_eq!(
        urls,
        [
            "amqp://lk:pw@rabbit1:5672/%2f",
            "amqp://lk:pw@rabbit2:5672/%2f",
            "amqps://lk:pw@rabbit3:5671/%2f"
        ]
    );
    let shown = c.describe();
    assert!(!shown.contains(":pw@"), "{shown}");
}

#[test]
fn a_bad_node_in_the_list_is_named_by_its_place() {
    let cases = [
        (
            "amqp://lk:s3cret@rabbit1/%2f,,amqp://rabbit3/%2f",
            "node 2 of 3",
        ),
        ("amqp://lk:s3cret@rabbit1/%2f,", "node 2 of 2"),
        ("amqp://lk:s3cret@rabbit1/%2f,local", "node 2 of 2"),
        (
            "amqp://lk:s3cret@rabbit1/%2f,redis://rabbit2",
            "node 2 of 2",
        ),
        (
            "amqp://lk:s3cret@rabbit1:port/%2f,amqp://rabbit2/%2f",
            "node 1 of 2",
        ),
        (
            "amqp://lk:s3cret@rabbit1/%2f,amqp://lk:s3cret@rabbit1/%2f",
            "node 2 of 2: the same URL as node 1",
        ),
    ];
    for (value, place) in cases {
        let err = load(&[("LATCHKEY_QUEUE_URL", value)]).unwrap_err();
        assert_eq!(err.key, "queue_url", "{value}: {err}");
        let line = err.to_string();
        assert!(line.contains(place), "{value}: {line}");
        assert!(!line.contains("s3cret"), "{value}: {line}");
        assert!(!line.contains('\n'), "one line: {line}");
    }
}

#[test]
fn bounces_are_off_by_default_and_configured_by_environment() {
    let c = Config::defaults();
    assert_eq!(c.bounces.listen, None);
    assert_eq!(c.bounces.domain_for(Some("demo")), None);
    assert!(c.bounces.domains().is_empty());

    let c = load(&[
        ("LATCHKEY_BOUNCES__LISTEN", "0.0.0.0:2525"),
        ("LATCHKEY_BOUNCES__DOMAIN", "bounces.latchkey.example"),
        (
            "LATCHKEY_BOUNCES__STOREFRONT_DOMAINS__HARBORVIEW",
            "bounces.harborview.example",
        ),
    ])
    .unwrap();
    assert_eq!(c.bounces.listen, Some("0.0.0.0:2525".parse().unwrap()));
    assert_eq!(
        c.bounces.domain_for(Some("harborview")),
        Some("bounces.harborview.example")
    );
    assert_eq!(
        c.bounces.domain_for(Some("demo")),
        Some("bounces.latchkey.example")
    );
    assert_eq!(c.bounces.domain_for(None), Some("bounces.latchkey.example"));
    assert_eq!(c.bounces.domains().len(), 2);

    // Empty values turn a setting off.
    let c = load(&[
        ("LATCHKEY_BOUNCES__LISTEN", ""),
        ("LATCHKEY_BOUNCES__DOMAIN", ""),
    ])
    .unwrap();
    assert_eq!((c.bounces.listen, c.bounces.domain), (None, None));
}

#[test]
fn a_bad_bounce_setting_names_its_key() {
    let domain = ("LATCHKEY_BOUNCES__DOMAIN", "bounces.example.com");
    let cases: [(&[(&str, &str)], &str); 6] = [
        (
            &[("LATCHKEY_BOUNCES__LISTEN", "port 25"), domain],
            "bounces.listen",
        ),
        (
            &[("LATCHKEY_BOUNCES__LISTEN", "0.0.0.0:2525")],
            "bounces.listen",
        ),
        (
            &[("LATCHKEY_BOUNCES__DOMAIN", "bounces@example.com")],
            "bounces.domain",
        ),
        (
            &[("LATCHKEY_BOUNCES__STOREFRONT_DOMAINS__DEMO", "not a domain")],
            "bounces.storefront_domains.demo",
        ),
        (
            &[("LATCHKEY_BOUNCES__MAX_CONNECTIONS", "0"), domain],
            "bounces.max_connections",
        ),
        (
            &[("LATCHKEY_BOUNCES__IDLE_TIMEOUT_SECONDS", "0")],
            "bounces.idle_timeout_seconds",
        ),
    ];
    for (env, key) in cases {
        let err = load(env).unwrap_err();
        assert_eq!(err.key, key, "{env:?}: {err}");
        assert!(!err.to_string().contains('\n'), "one line: {err}");
    }
}
