//! Redis Sentinel: `sentinel://` broker and backend URLs, and following a
//! failover on every connection.
//!
//! The URL is kombu's: `sentinel://[:password@]host:26379[/db]`, several
//! joined by `;`, with the master's name as a query parameter (kombu takes
//! it from `broker_transport_options={'master_name': ...}`):
//! `sentinel://s1:26379;sentinel://s2:26379/0?master_name=mymaster`.
//!
//! Decisions worth knowing:
//! - **One local relay instead of a failover-aware client in every module.**
//!   The worker opens many connections (broker, blocking fetch, backend,
//!   pidbox, events, fleet sync, each with its own reconnect logic). Rather
//!   than teach each of them Sentinel, `host run` starts a relay on
//!   127.0.0.1 and hands every module a plain `redis://` URL to it. Each
//!   connection to the relay is connected to the master the sentinels name
//!   *at that moment*; when they name another, every relayed connection is
//!   closed, and each module's usual reconnect lands on the new master.
//! - **Sentinels are asked every [`POLL`]** (`SENTINEL
//!   get-master-addr-by-name`), in order, the first answer wins. Polling
//!   also notices a failover that happened while a sentinel was unreachable.
//! - **The relay only moves bytes**, so AUTH, SELECT and everything else go
//!   through unchanged; TLS to the master (`rediss`) is not supported here.
//! - Writes the old master accepted but had not replicated when it died are
//!   lost, as with any Redis failover: a lost ack re-runs a job after the
//!   visibility timeout (a duplicate), never loses it.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// How often the sentinels are asked where the master is.
const POLL: Duration = Duration::from_millis(250);

/// A parsed `sentinel://` URL.
#[derive(Debug, Clone, PartialEq)]
pub struct SentinelUrl {
    pub sentinels: Vec<String>,
    pub master_name: String,
    pub db: i64,
    /// The master's password (passed on in the `redis://` URL).
    pub password: Option<String>,
}

/// `None` if `url` is not a `sentinel://` URL.
pub fn parse(url: &str) -> anyhow::Result<Option<SentinelUrl>> {
    if !url.starts_with("sentinel://") {
        return Ok(None);
    }
    let (mut sentinels, mut master_name, mut db, mut password) = (Vec::new(), None, 0, None);
    for part in url.split(';').map(str::trim).filter(|part| !part.is_empty()) {
        let rest = part.strip_prefix("sentinel://").with_context(|| format!("{part:?} is not a sentinel:// URL"))?;
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            match pair.split_once('=') {
                Some(("master_name", name)) if !name.is_empty() => master_name = Some(name.to_string()),
                _ => anyhow::bail!("unknown sentinel URL parameter {pair:?} (expected master_name=NAME)"),
            }
        }
        let (address, path) = rest.split_once('/').unwrap_or((rest, ""));
        if !path.is_empty() {
            db = path.parse().with_context(|| format!("sentinel URL database {path:?} is not a number"))?;
        }
        let address = match address.rsplit_once('@') {
            Some((userinfo, address)) => {
                let secret = userinfo.rsplit(':').next().unwrap_or_default();
                if !secret.is_empty() {
                    password = Some(secret.to_string());
                }
                address
            }
            None => address,
        };
        anyhow::ensure!(address.rsplit_once(':').is_some_and(|(_, port)| port.parse::<u16>().is_ok()), "sentinel {address:?}: expected host:port");
        sentinels.push(address.to_string());
    }
    let master_name = master_name.context("a sentinel:// URL needs the master's name: ...;sentinel://host:26379?master_name=NAME")?;
    anyhow::ensure!(!sentinels.is_empty(), "a sentinel:// URL needs at least one sentinel");
    Ok(Some(SentinelUrl { sentinels, master_name, db, password }))
}

/// For a `sentinel://` URL, starts a relay that follows the master and
/// returns a `redis://` URL to it; any other URL is returned as it is.
pub async fn follow(url: &str) -> anyhow::Result<String> {
    let Some(sentinel) = parse(url)? else { return Ok(url.to_string()) };
    let master = master_address(&sentinel)
        .await
        .with_context(|| format!("no sentinel ({}) knows master {:?}", sentinel.sentinels.join(", "), sentinel.master_name))?;
    tracing::info!(master = %master, name = sentinel.master_name, "sentinel: following the master");
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let local = listener.local_addr()?;
    let (current_tx, current) = watch::channel(master);
    tokio::spawn(watch_master(sentinel.clone(), current_tx));
    tokio::spawn(relay(listener, current));
    let auth = sentinel.password.as_deref().map(|password| format!(":{password}@")).unwrap_or_default();
    Ok(format!("redis://{auth}{local}/{}", sentinel.db))
}

/// Where the sentinels say the master is (the first that answers).
async fn master_address(sentinel: &SentinelUrl) -> Option<SocketAddr> {
    for address in &sentinel.sentinels {
        let ask = async {
            let client = redis::Client::open(format!("redis://{address}")).ok()?;
            let mut connection = client.get_multiplexed_async_connection().await.ok()?;
            let reply: Option<(String, u16)> = redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(&sentinel.master_name)
                .query_async(&mut connection)
                .await
                .ok()?;
            let (host, port) = reply?;
            let found = tokio::net::lookup_host((host.as_str(), port)).await.ok()?.next();
            found
        };
        if let Ok(Some(found)) = tokio::time::timeout(Duration::from_secs(1), ask).await {
            return Some(found);
        }
    }
    None
}

async fn watch_master(sentinel: SentinelUrl, current: watch::Sender<SocketAddr>) {
    loop {
        tokio::time::sleep(POLL).await;
        if let Some(master) = master_address(&sentinel).await {
            let previous = *current.borrow();
            if master != previous {
                tracing::warn!(from = %previous, to = %master, "sentinel: the master moved; reconnecting every connection");
                let _ = current.send(master);
            }
        }
    }
}

async fn relay(listener: TcpListener, current: watch::Receiver<SocketAddr>) {
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else { continue };
        let mut current = current.clone();
        tokio::spawn(async move {
            let master = *current.borrow_and_update();
            let Ok(mut outbound) = TcpStream::connect(master).await else { return };
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                _ = current.changed() => {}
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kombu_style_urls_parse() {
        let url = parse("sentinel://:s3cret@127.0.0.1:26379;sentinel://10.0.0.2:26380/2?master_name=mymaster").unwrap().unwrap();
        assert_eq!(
            url,
            SentinelUrl {
                sentinels: vec!["127.0.0.1:26379".into(), "10.0.0.2:26380".into()],
                master_name: "mymaster".into(),
                db: 2,
                password: Some("s3cret".into()),
            }
        );
        assert_eq!(parse("redis://127.0.0.1:6379/0").unwrap(), None);
        assert!(parse("sentinel://127.0.0.1:26379").unwrap_err().to_string().contains("master_name"));
        assert!(parse("sentinel://127.0.0.1:26379?master=x").is_err());
        assert!(parse("sentinel://127.0.0.1?master_name=x").is_err());
    }
}
